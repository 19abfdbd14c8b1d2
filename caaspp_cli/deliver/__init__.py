"""`caaspp deliver`: the reporting season as one nightly job, and `caaspp status`."""

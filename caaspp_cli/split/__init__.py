"""`caaspp split`: merged TOMS downloads -> one PDF per student report."""

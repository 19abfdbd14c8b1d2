"""The only package that knows the ETS score-report wire format (see docs/ets-api.md)."""

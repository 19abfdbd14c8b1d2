"""caaspp: fetch, protect and deliver California Student Score Reports."""

__version__ = "0.2.0"

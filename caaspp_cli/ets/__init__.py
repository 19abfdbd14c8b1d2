"""The only package that knows the ETS score-report wire format (see docs/ets-api.md).

``contract`` holds every wire detail (paths, codes, statuses, payload models); ``client``
asks for tokens, report lists and downloads, over ``session`` (pools, ``throttle``,
deadlines, retries), reading answers with ``body``, saving PDFs with ``download`` (checked
by ``pdfcheck``), telling failures with ``failures`` and showing URLs through ``urls``;
``connect`` opens a client for a profile.
"""

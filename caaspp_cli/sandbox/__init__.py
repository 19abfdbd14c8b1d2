"""The local ETS-compatible sandbox: a synthetic world of students and their score reports.

``world`` holds the students and which reports exist, ``render`` draws the reports as PDF
or HTML, ``fonts`` finds the fonts the translated reports need, and ``app`` serves it all
over HTTP the way the ETS API does. Everything is synthetic and deterministic.
"""

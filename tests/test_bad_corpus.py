"""Bad input: every file of the corpus in tests/data/bad/ has a case.

See tests/bad_input_checks.py for what each refusal must look like.
"""

from __future__ import annotations

from bad_input_checks import (
    BAD,
)
from test_bad_config import CONFIGS
from test_bad_mail import TEMPLATES
from test_bad_pdfs import PDFS
from test_bad_rosters import ROSTERS


def test_every_file_of_the_corpus_has_a_case() -> None:
    for folder, cases in (
        ("rosters", ROSTERS),
        ("config", CONFIGS),
        ("pdfs", PDFS),
        ("templates", TEMPLATES),
    ):
        on_disk = {p.name for p in (BAD / folder).iterdir() if not p.name.startswith(".")}
        assert on_disk == set(cases), folder

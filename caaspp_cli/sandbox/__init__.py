"""The local ETS-compatible sandbox: a synthetic world of students and their score reports.

``world`` holds the students and which reports exist, ``render`` draws the reports as PDF
or HTML, ``fonts`` finds the fonts the translated reports need, and ``app`` serves it all
over HTTP the way the ETS API does. Everything is synthetic and deterministic.

The sandbox's own packages (starlette, uvicorn, fpdf2) are the ``sandbox`` extra: a
district server that only fetches and sends real reports does without them.
:func:`require_extra` tells, in one sentence, how to install them when they are missing.
"""

from __future__ import annotations

import importlib
from typing import Final

from caaspp_cli.errors import BadInputError

# The modules of the ``sandbox`` extra (pyproject.toml), by import name.
EXTRA_MODULES: Final = ("starlette", "uvicorn", "fpdf")
INSTALL_COMMAND: Final = 'python3 -m pip install ".[sandbox]"'
PIPX_COMMAND: Final = "pipx inject caaspp starlette uvicorn fpdf2"


def require_extra() -> None:
    """BadInputError, naming the install command, unless the sandbox's packages import."""
    missing = []
    for name in EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise BadInputError(
            f"the sandbox is an optional part of caaspp and its packages are not installed "
            f"({', '.join(missing)}): run `{INSTALL_COMMAND}` in the caaspp folder "
            f"(with pipx: `{PIPX_COMMAND}`)."
        )

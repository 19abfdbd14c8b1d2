"""docs/architecture.md is the map of the package: every module is on it, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "caaspp_cli"
MAP = ROOT / "docs" / "architecture.md"


def _mapped_modules() -> set[str]:
    """Modules named by the map's bullets, as paths relative to the package."""
    text = MAP.read_text("utf-8").split("## Module map", 1)[1].split("\n## ", 1)[0]
    folder = ""
    found: set[str] = set()
    for line in text.splitlines():
        heading = re.match(r"^### `([a-z_]+)/`", line)
        if heading:
            folder = heading.group(1) + "/"
        elif line.startswith("### "):
            folder = ""
        elif line.startswith("- ") or line.startswith("  `"):
            # The names before the dash that says what they own.
            names = line.split(" — ", 1)[0]
            found |= {folder + name for name in re.findall(r"`([a-z0-9_]+\.py)`", names)}
    return found


def _package_modules() -> set[str]:
    return {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" or path.read_text("utf-8").count("\n") > 3
    }


def test_every_module_is_on_the_map_and_the_map_names_no_other() -> None:
    mapped, real = _mapped_modules(), _package_modules()
    assert sorted(real - mapped) == [], "modules missing from docs/architecture.md"
    assert sorted(mapped - real) == [], "docs/architecture.md names modules that do not exist"


LONG = 600


def test_a_module_over_600_lines_says_why_at_its_top() -> None:
    import ast

    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text("utf-8")
        if text.count("\n") <= LONG:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if f"Over {LONG} lines on purpose:" not in " ".join(doc.split()):
            unexplained.append(path.relative_to(PACKAGE).as_posix())
    assert unexplained == []

"""Where each report goes inside an output folder: `--layout` templates, made safe.

A template is a relative path with ``{placeholders}`` over the report's fields and the
roster's columns, e.g. ``{school}/{grade}/{ssid}_{test}_{year}_{language}.pdf``. Every
value is made into one safe file-name component (no separators, no ``..``, nothing that
Windows refuses), so no output ever lands outside the folder whatever the roster holds.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

from caaspp_cli.errors import BadInputError

DEFAULT_LAYOUT = "{ssid}_{test}_{year}_{language}.pdf"
REQUIRED_FIELDS = ("ssid", "test", "year", "language")
REPORT_FIELDS = ("ssid", "test", "year", "language", "grade", "format")
ROSTER_FIELDS = ("first_name", "last_name", "name", "school", "school_code", "school_name")
MAX_COMPONENT = 80
EMPTY_VALUE = "unknown"

_WINDOWS_RESERVED = {
    "CON", "PRN", "AUX", "NUL",
    *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10)),
}
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')


def column_key(header: str) -> str:
    """The placeholder name of a roster column: lower case, runs of other chars as `_`."""
    folded = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")


def safe_component(value: str, max_length: int = MAX_COMPONENT) -> str:
    """One path component that every common file system accepts and that names no folder."""
    text = unicodedata.normalize("NFC", value)
    text = _UNSAFE.sub("_", text).strip().strip(".").strip()
    text = re.sub(r"\s+", " ", text)
    if not text or set(text) <= {"_", "."}:
        return EMPTY_VALUE
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return text[:max_length].rstrip(" .") or EMPTY_VALUE


class Layout:
    """A checked `--layout` template."""

    def __init__(self, template: str, available: Iterable[str]) -> None:
        self.template = template.strip().replace("\\", "/")
        names = sorted(set(available))
        fields = self._fields(self.template)
        unknown = [f for f in fields if f not in names]
        if unknown:
            raise BadInputError(
                f"the layout names unknown field{'s' if len(unknown) > 1 else ''} "
                + ", ".join("{" + f + "}" for f in unknown) + ".",
                hint="available: " + " ".join("{" + n + "}" for n in names),
            )
        missing = [f for f in REQUIRED_FIELDS if f not in fields]
        if missing:
            raise BadInputError(
                "the layout must contain {ssid}, {test}, {year} and {language}, so that no "
                "two reports share a file; it lacks " + ", ".join("{" + f + "}" for f in missing)
                + ".",
            )
        path = PurePosixPath(self.template)
        if self.template.startswith("/") or re.match(r"^[A-Za-z]:", self.template):
            raise BadInputError("the layout must be a relative path inside the output folder.")
        literal_parts = [_strip_fields(part) for part in path.parts]
        if any(part in ("..", ".") for part in literal_parts):
            raise BadInputError("the layout must not contain '.' or '..' folders.")
        if not self.template.lower().endswith(".pdf"):
            self.template += ".pdf"
        self.fields = fields

    @staticmethod
    def _fields(template: str) -> list[str]:
        fields: list[str] = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise BadInputError(
                f"the layout is not a valid template: {exc}.",
                hint="write placeholders as {name}; double braces {{ }} for a literal brace.",
            ) from None
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if not name or spec or conversion or not name.isidentifier():
                raise BadInputError(
                    f"the layout has a placeholder that is not a plain name: {{{name}}}.",
                    hint="write placeholders as {name}, without formats or indexes.",
                )
            fields.append(name)
        return fields

    def relative_path(self, values: Mapping[str, object]) -> PurePosixPath:
        """The report's path relative to the output folder."""
        safe = {name: safe_component(str(values.get(name, "") or "")) for name in self.fields}
        rendered = self.template.format_map(safe)
        parts = [safe_component(part, max_length=150) for part in rendered.split("/") if part]
        return PurePosixPath(*parts)


def _strip_fields(part: str) -> str:
    return re.sub(r"\{[^{}]*\}", "x", part)

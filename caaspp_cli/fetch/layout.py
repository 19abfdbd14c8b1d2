"""Where each report goes inside an output folder: `--layout` templates, made safe.

A template is a relative path with ``{placeholders}`` over the report's fields and the
roster's columns, e.g. ``{school}/{grade}/{ssid}_{test}_{year}_{language}.pdf``. Every
value is made into one safe file-name component (no separators, no ``..``, nothing that
Windows refuses), so no output ever lands outside the folder whatever the roster holds.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Final

from caaspp_cli.errors import LayoutError

REQUIRED_FIELDS = ("ssid", "test", "year", "language")
REPORT_FIELDS = ("ssid", "test", "year", "language", "grade", "format")
ROSTER_FIELDS = ("first_name", "last_name", "name", "school", "school_code", "school_name")
MAX_COMPONENT = 80  # characters of one field's value
MAX_PART = 150  # characters of one folder or file name
# Bytes of UTF-8 in one name: ext4 and most Unix file systems take 255, and NTFS 255 UTF-16
# units, which are never more than the UTF-8 bytes.
MAX_PART_BYTES = 255
EMPTY_VALUE = "unknown"

# Device names Windows reserves, with or without an extension; since Windows 7 the
# superscript digits count as digits here.
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "CONIN$",
    "CONOUT$",
    *(f"COM{i}" for i in "123456789\u00b9\u00b2\u00b3"),
    *(f"LPT{i}" for i in "123456789\u00b9\u00b2\u00b3"),
}
# What Windows refuses in a name, control characters, and lone surrogates (not encodable).
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f\ud800-\udfff]+')


def column_key(header: str) -> str:
    """The placeholder name of a roster column: lower case, runs of other chars as `_`."""
    folded = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")


def safe_component(value: str, max_length: int = MAX_COMPONENT, suffix: str = "") -> str:
    """One path component that every common file system accepts and that names no folder:
    no separator, nothing Windows refuses, no dot or space at either end, no reserved
    device name, at most ``max_length`` characters and ``MAX_PART_BYTES`` bytes with
    ``suffix`` (a safe extension such as ``.pdf``) added."""
    text = _clean(value)
    if not text or set(text) <= {"_", "."}:
        return EMPTY_VALUE + suffix
    # Room for the "_" below, and the suffix.
    text = _shorten(text, max_length - 1, MAX_PART_BYTES - 1 - len(suffix.encode())).rstrip(" .")
    if text.partition(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return (text or EMPTY_VALUE) + suffix


def _clean(value: str) -> str:
    """``value`` with what no file system takes replaced, before any length limit."""
    text = unicodedata.normalize("NFC", value)
    return re.sub(r"\s+", " ", _UNSAFE.sub("_", text)).strip(" .")


def _shorten(text: str, max_length: int, max_bytes: int) -> str:
    """``text`` cut to ``max_length`` characters and ``max_bytes`` bytes of UTF-8."""
    text = text[:max_length]
    data = text.encode("utf-8")
    return text if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", "ignore")


class Layout:
    """A checked `--layout` template."""

    def __init__(self, template: str, available: Iterable[str]) -> None:
        self.template = template.strip().replace("\\", "/")
        names = sorted(set(available))
        fields = self._fields(self.template)
        unknown = [f for f in fields if f not in names]
        if unknown:
            raise LayoutError(
                f"the layout names unknown field{'s' if len(unknown) > 1 else ''} "
                + ", ".join("{" + f + "}" for f in unknown)
                + ".",
                hint="available: " + " ".join("{" + n + "}" for n in names),
            )
        missing = [f for f in REQUIRED_FIELDS if f not in fields]
        if missing:
            raise LayoutError(
                "the layout must contain {ssid}, {test}, {year} and {language}, so that no "
                "two reports share a file; it lacks "
                + ", ".join("{" + f + "}" for f in missing)
                + ".",
            )
        path = PurePosixPath(self.template)
        if self.template.startswith("/") or re.match(r"^[A-Za-z]:", self.template):
            raise LayoutError("the layout must be a relative path inside the output folder.")
        literal_parts = [_strip_fields(part) for part in path.parts]
        if any(part in ("..", ".") for part in literal_parts):
            raise LayoutError("the layout must not contain '.' or '..' folders.")
        if not self.template.lower().endswith(".pdf"):
            self.template += ".pdf"
        self.fields = fields
        # Each folder or file name of the template, and its placeholders other than the
        # report's own: when a name would be too long those are shortened, not the end of
        # the name, which holds what tells one report from another.
        self._parts = [(part, self._fields(part)) for part in self.template.split("/") if part]
        # The file name's extension stays whatever the length of the rest.
        self._suffix = self.template[-4:]
        self._parts[-1] = (self._parts[-1][0][:-4], self._parts[-1][1])
        self._check_room()

    def _check_room(self) -> None:
        """Refuse a template whose fixed text leaves no room for the fields that tell one
        report from another: names are never cut, since a cut name is another report's."""
        probe = {name: _PROBE_OTHER for name in self.fields}
        probe.update({name: "9" * room for name, room in _RESERVED.items()})
        try:
            self.relative_path(probe)
        except LayoutError:
            raise LayoutError(
                "the layout's fixed text is too long: with it a folder or file name would "
                f"pass {MAX_PART} characters ({MAX_PART_BYTES} bytes), and names are never "
                "cut, since {ssid}, {test}, {year} and {language} must stay whole for no two "
                "reports to share a file.",
                hint="shorten the text between placeholders, or spread it over folders (a/b/).",
            ) from None

    @staticmethod
    def _fields(template: str) -> list[str]:
        fields: list[str] = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise LayoutError(
                f"the layout is not a valid template: {exc}.",
                hint="write placeholders as {name}; double braces {{ }} for a literal brace.",
            ) from None
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if not name or spec or conversion or not name.isidentifier():
                raise LayoutError(
                    f"the layout has a placeholder that is not a plain name: {{{name}}}.",
                    hint="write placeholders as {name}, without formats or indexes.",
                )
            fields.append(name)
        return fields

    def relative_path(self, values: Mapping[str, object]) -> PurePosixPath:
        """The report's path relative to the output folder.

        LayoutError if a name would have to be cut to fit: a cut name could be another
        report's (values of the report's own fields longer than their reserved room).
        """
        safe = {name: safe_component(str(values.get(name, "") or "")) for name in self.fields}
        names = [_name(part, fields, safe) for part, fields in self._parts]
        names[-1] = _name(*self._parts[-1], safe, suffix=self._suffix)
        return PurePosixPath(*names)


# Room kept in a name for the report's own fields, whatever their value: the other fields
# of a student are then cut the same way for each of its reports.
_RESERVED: Final = {"ssid": 10, "test": 10, "year": 4, "language": 10}
# The other fields are cut down to one character at most; the widest one in UTF-8.
_PROBE_OTHER: Final = "\U0001f642"


def _name(part: str, fields: Sequence[str], safe: Mapping[str, str], suffix: str = "") -> str:
    """One rendered name of the template: its fields other than the report's own cut (the
    longest first) until it fits in MAX_PART characters and MAX_PART_BYTES bytes."""
    own = dict(safe)
    shortened = sorted({name for name in fields if name not in REQUIRED_FIELDS})
    room = len(suffix) + sum(
        max(0, _RESERVED[name] - len(own[name])) for name in fields if name in _RESERVED
    )
    rendered = part.format_map(own)
    while shortened:
        chars = len(rendered) + room - (MAX_PART - 1)
        # surrogatepass: a --layout may hold what a terminal could not decode; it is made "_".
        data = len(rendered.encode("utf-8", "surrogatepass")) + room - (MAX_PART_BYTES - 1)
        longest = max(shortened, key=lambda name: len(own[name]))
        value = own[longest]
        if max(chars, data) <= 0 or len(value) <= 1:
            break
        cut = max(chars, math.ceil(data * len(value) / len(value.encode("utf-8"))))
        others = max((len(own[name]) for name in shortened if name != longest), default=1)
        own[longest] = value[: max(1, len(value) - cut, min(others, len(value) - 1))]
        rendered = part.format_map(own)
    text = _clean(rendered)
    # safe_component keeps room for a "_" before a reserved device name, and the suffix.
    if len(text) > MAX_PART - 1 - len(suffix) or len(
        text.encode("utf-8")
    ) > MAX_PART_BYTES - 1 - len(suffix.encode("utf-8")):
        raise LayoutError(
            f"a folder or file name of this report would pass {MAX_PART} characters "
            f"({MAX_PART_BYTES} bytes), and cutting it could give it another report's name.",
            hint="shorten the layout's fixed text or its fields.",
        )
    return safe_component(rendered, max_length=MAX_PART - len(suffix), suffix=suffix)


def _strip_fields(part: str) -> str:
    return re.sub(r"\{[^{}]*\}", "x", part)

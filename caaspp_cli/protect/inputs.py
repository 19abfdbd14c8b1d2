"""The reports to protect: which files, where their copies go, and whether each can be.

:func:`collect_inputs` finds the PDFs named (files, or folders searched recursively, a
`caaspp bulk` manifest giving each its student), :func:`check_locations` refuses a password
file or an output folder where they must not be, and :func:`open_input` opens one report,
refusing a link, a file that is not a PDF, a damaged one and one already encrypted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pikepdf

from caaspp_cli.artifacts import is_report_candidate, manifest_ssids, ssid_of_file_name
from caaspp_cli.errors import BadInputError, LinkRefusedError
from caaspp_cli.fsutil import open_nofollow, refuse_link

__all__ = [
    "EncryptedInput",
    "InputFile",
    "InputProblem",
    "check_locations",
    "collect_inputs",
    "open_input",
    "short_reason",
]


class InputProblem(Exception):
    """An input that cannot be protected: already encrypted, not a PDF, damaged."""


class EncryptedInput(InputProblem):
    """An input that is already encrypted."""


# --- One input ------------------------------------------------------------------------------
def short_reason(exc: BaseException, path: Path) -> str:
    text = str(exc).strip()
    for prefix in (f"{path}: ", f"{path} "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.splitlines()[0] if text else type(exc).__name__


def open_input(path: Path) -> pikepdf.Pdf:
    """Open an input report; InputProblem if it is encrypted, not a PDF, or damaged.

    qpdf repairs what it can of a damaged file and only warns: any warning on opening is
    taken as damage, since a report is written once by ETS and should need no repair.
    """
    try:
        # A link in an input folder could be any file of the computer, another child's
        # report among them: an input is read only as the plain file it is.
        fd = open_nofollow(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except LinkRefusedError:
        raise InputProblem("is a symbolic link (or junction); it is not followed") from None
    except OSError as exc:
        raise InputProblem(f"cannot be read: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            head = handle.read(1024)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 1024))
            tail = handle.read()
    except OSError as exc:
        raise InputProblem(f"cannot be read: {exc.strerror or exc}") from None
    if b"%PDF-" not in head:
        raise InputProblem("not a PDF")
    if b"%%EOF" not in tail:
        raise InputProblem("damaged PDF: it is cut short (no end-of-file marker)")
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError:
        raise EncryptedInput("already encrypted: it asks for a password") from None
    except (pikepdf.PdfError, ValueError, RuntimeError) as exc:
        raise InputProblem(f"damaged PDF: {short_reason(exc, path)}") from None
    try:
        if pdf.is_encrypted:
            raise EncryptedInput("already encrypted")
        pages = len(pdf.pages)
        warnings = pdf.get_warnings()
        if warnings:
            raise InputProblem(f"damaged PDF: {short_reason(Exception(warnings[-1]), path)}")
        if pages == 0:
            raise InputProblem("damaged PDF: it has no pages")
    except InputProblem:
        pdf.close()
        raise
    except (pikepdf.PdfError, ValueError, RuntimeError) as exc:
        pdf.close()
        raise InputProblem(f"damaged PDF: {short_reason(exc, path)}") from None
    return pdf


# --- Collecting inputs ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InputFile:
    """One PDF to protect: where it is, where its copy goes under DIR, whose it is."""

    source: Path
    output: PurePosixPath  # relative to DIR
    ssid: str | None


def _ssid_of(relative: PurePosixPath, manifest: Mapping[str, str]) -> str | None:
    ssid = manifest.get(relative.as_posix())
    if ssid is None:
        ssid = ssid_of_file_name(relative.name)
    return ssid


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def collect_inputs(inputs: Sequence[Path], out_dir: Path) -> list[InputFile]:
    """The PDFs named by ``inputs`` (files, or folders searched recursively), in order.

    A folder's files go to the same relative path under DIR. Files under ``out_dir`` and
    our own temp files are left out, so DIR may sit inside an input folder.
    """
    out_real = out_dir.resolve()
    found: list[InputFile] = []
    manifests: dict[Path, dict[str, str]] = {}
    for given in inputs:
        if not given.exists():
            raise BadInputError(f"{given} does not exist.")
        if given.is_dir():
            folder = given.resolve()
            manifest = manifest_ssids(folder)
            # DIR inside the folder: its files are outputs, not inputs.
            skip = out_real if out_real.is_relative_to(folder) else None
            for root, dirs, names in os.walk(folder):
                root_path = Path(root)
                dirs[:] = sorted(
                    d
                    for d in dirs
                    if not d.startswith(".") and not (skip and _is_within(root_path / d, skip))
                )
                for name in sorted(names):
                    if not is_report_candidate(name):
                        continue
                    source = root_path / name
                    relative = PurePosixPath(source.relative_to(folder).as_posix())
                    found.append(InputFile(source, relative, _ssid_of(relative, manifest)))
        else:
            refuse_link(given)
            source = given.resolve()
            relative = PurePosixPath(source.name)
            if source.parent not in manifests:
                manifests[source.parent] = manifest_ssids(source.parent)
            manifest = manifests[source.parent]
            found.append(InputFile(source, relative, _ssid_of(relative, manifest)))
    return found


def check_locations(inputs: Sequence[Path], out_dir: Path, password_file: Path) -> None:
    """Refuse a password file inside DIR or an input folder, and a DIR that is an input."""
    out_real = out_dir.resolve()
    sheet_real = password_file.resolve()
    hint = "keep the password file apart: the passwords travel separately from the files."
    if _is_within(sheet_real, out_real):
        raise BadInputError(
            f"the password file {password_file} is inside the output folder {out_dir}.", hint=hint
        )
    for given in inputs:
        real = given.resolve()
        if given.is_dir():
            if _is_within(sheet_real, real):
                raise BadInputError(
                    f"the password file {password_file} is inside the input folder {given}.",
                    hint=hint,
                )
            if out_real == real:
                raise BadInputError(
                    f"the output folder {out_dir} is the input folder {given}: the protected "
                    "copies would replace the reports.",
                    hint="choose another --out folder.",
                )
        elif sheet_real == real:
            raise BadInputError(f"the password file {password_file} is an input.", hint=hint)
    if sheet_real.is_dir():
        raise BadInputError(f"the password file {password_file} is a folder.")
    if out_real.exists() and not out_real.is_dir():
        raise BadInputError(f"the output folder {out_dir} is a file.")

"""What a protected report is, checked: the one definition protect and send both use.

:func:`verify_protected_pdf` accepts a file (a path, or its bytes) only if it is encrypted
with V=5, R=6 and AESV3, the password opens it, the empty password opens it neither as user
nor as owner, its permissions allow printing and deny every change (all checked by our own
algorithm 2.B in :mod:`caaspp_cli.protect.pdfcrypt`), and qpdf, given the key, parses it,
reads the same /Encrypt dictionary, and finds a content stream that our AES decrypts to the
same bytes (and, with a :class:`ContentProbe`, to the input report's content).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pikepdf

from caaspp_cli.protect.handler import open_with_key
from caaspp_cli.protect.inputs import InputProblem, short_reason
from caaspp_cli.protect.pdfcrypt import (
    EncryptValues,
    ProtectionCheckError,
    aes_cbc_decrypt,
    unlock,
)
from caaspp_cli.protect.pdfsyntax import OBJECT_HEADER, last_object_header
from caaspp_cli.protect.policy import encode_password, normalize_password
from caaspp_cli.words import plural

__all__ = [
    "ContentProbe",
    "ProtectionCheckError",
    "first_content_stream",
    "offset_of",
    "probe_content",
    "protection_problem",
    "verify_protected_pdf",
]


@dataclass(frozen=True, slots=True)
class ContentProbe:
    """What a protected copy must decrypt to: the input's page count and the decoded bytes
    of the first content stream of its first page (None if it has none we can decode)."""

    pages: int
    first_content: bytes | None


def first_content_stream(pdf: pikepdf.Pdf) -> pikepdf.Stream | None:
    for page in pdf.pages:
        contents = page.obj.get("/Contents")
        if isinstance(contents, pikepdf.Array):
            contents = next((item for item in contents if isinstance(item, pikepdf.Stream)), None)
        if isinstance(contents, pikepdf.Stream) and contents.is_indirect:
            return contents
    return None


def probe_content(pdf: pikepdf.Pdf) -> ContentProbe:
    stream = first_content_stream(pdf)
    content = None
    if stream is not None:
        try:
            content = stream.read_bytes()
        except NotImplementedError:  # a filter qpdf cannot decode: pages and keys still checked
            content = None
        except pikepdf.PdfError as exc:
            raise InputProblem(f"damaged PDF: {short_reason(exc, Path(pdf.filename))}") from None
    return ContentProbe(len(pdf.pages), content)


def _stream_data_at(data: bytes, offset: int, length: int) -> bytes:
    """The raw (still encrypted) data of the stream object that starts at ``offset``."""
    header = OBJECT_HEADER.match(data, offset)
    if header is None:
        raise ProtectionCheckError("its cross-reference table points to no object")
    keyword = data.find(b"stream", header.end())
    if keyword < 0:
        raise ProtectionCheckError("a content stream is missing")
    start = keyword + len(b"stream")
    start += 2 if data.startswith(b"\r\n", start) else 1
    end = start + length
    if not data[end : end + 32].lstrip(b"\r\n ").startswith(b"endstream"):
        raise ProtectionCheckError("a content stream does not have the length it declares")
    return data[start:end]


def offset_of(pdf: pikepdf.Pdf, data: bytes, stream: pikepdf.Stream) -> int:
    """Where ``stream`` starts in ``data``: from the cross-reference table (pikepdf >= 10.9)
    or, failing that, from its object header (a wrong match only fails the check)."""
    number, generation = stream.objgen
    xref = getattr(pdf, "get_xref_table", None)
    offset = None
    if xref is not None:
        entry = xref().get((number, generation))
        offset = None if entry is None else entry.offset
    else:  # pragma: no cover - pikepdf < 10.9
        offset = last_object_header(data, number, generation)
    if offset is None:
        raise ProtectionCheckError("a content stream is not where a stream must be")
    return int(offset)


def _decrypt_stream(key: bytes, raw: bytes) -> bytes:
    if len(raw) < 32 or len(raw) % 16:
        raise ProtectionCheckError("a content stream is not AES-encrypted")
    plain = aes_cbc_decrypt(key, raw[:16], raw[16:])
    pad = plain[-1]
    if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
        raise ProtectionCheckError("a content stream does not decrypt with the file key")
    return plain[:-pad]


def verify_protected_pdf(
    source: Path | bytes, password: str, *, probe: ContentProbe | None = None
) -> bytes:
    """Check that ``password`` opens ``source`` (a file, or its bytes) and nothing else
    does; return its file key.

    ``probe``: what the decrypted content must be (the input's). Raises
    ProtectionCheckError (``wrong_password`` when the file is encrypted but the password
    does not open it). A file is given to qpdf with the key our own checks found (no
    hashing); bytes, with the password, and qpdf must find the same key.
    """
    if isinstance(source, bytes):
        data, shown = source, Path("<bytes>")
    else:
        shown = source
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise ProtectionCheckError(f"it cannot be read: {exc.strerror or exc}") from None
    values = EncryptValues.read(data)
    file_key = unlock(values, encode_password(password))
    try:
        with _open_for_check(source, password, file_key) as pdf:
            if EncryptValues.of(pdf) != values:
                raise ProtectionCheckError("its /Encrypt dictionary reads two ways")
            _check_content(pdf, data, file_key, probe)
    except ProtectionCheckError as exc:
        raise ProtectionCheckError(str(exc), password_ok=True) from None
    except pikepdf.PasswordError:
        raise ProtectionCheckError(
            "qpdf does not open it with the password", password_ok=True
        ) from None
    except (pikepdf.PdfError, RuntimeError, ValueError) as exc:
        raise ProtectionCheckError(
            f"it cannot be parsed: {short_reason(exc, shown)}", password_ok=True
        ) from None
    return file_key


def _open_for_check(source: Path | bytes, password: str, file_key: bytes) -> pikepdf.Pdf:
    if not isinstance(source, bytes):
        return open_with_key(source, file_key)
    pdf = pikepdf.open(io.BytesIO(source), password=normalize_password(password))
    if pdf.encryption.encryption_key != file_key:
        pdf.close()
        raise ProtectionCheckError("qpdf finds another file key than ours")
    return pdf


def protection_problem(source: Path | bytes, password: str) -> str | None:
    """Why a PDF (a file, or its bytes) is not a protected report that ``password`` opens,
    or None: what `caaspp send` asks before it attaches a report.

    qpdf must find that it asks for a password; then :func:`verify_protected_pdf` decides.
    """
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = source.read_bytes()
        except OSError as exc:
            return f"it cannot be read: {exc.strerror or exc}"
    try:
        with pikepdf.open(io.BytesIO(data)):
            return "it opens without a password (it is not encrypted)"
    except pikepdf.PasswordError:
        pass
    except (pikepdf.PdfError, ValueError, RuntimeError):
        return "it is not a readable PDF"
    try:
        verify_protected_pdf(data, password)
    except ProtectionCheckError as exc:
        if exc.wrong_password or (exc.other_encryption and not _opens_with(data, password)):
            return "the password in the password file does not open it"
        return str(exc)
    return None


def _opens_with(data: bytes, password: str) -> bool:
    """Whether qpdf opens ``data`` with ``password``: for encryptions our checks refuse
    before trying any password (RC4, AES-128, R=5)."""
    try:
        with pikepdf.open(io.BytesIO(data), password=normalize_password(password)):
            return True
    except (pikepdf.PasswordError, pikepdf.PdfError, ValueError, RuntimeError):
        return False


def _check_content(pdf: pikepdf.Pdf, data: bytes, key: bytes, probe: ContentProbe | None) -> None:
    pages = len(pdf.pages)
    if probe is not None and pages != probe.pages:
        raise ProtectionCheckError(
            f"it has {plural(pages, 'page')} where the input has {probe.pages}"
        )
    stream = first_content_stream(pdf)
    if stream is None:
        if probe is not None and probe.first_content is not None:
            raise ProtectionCheckError("its pages have lost their content")
        return
    raw = _stream_data_at(data, offset_of(pdf, data, stream), int(stream.stream_dict.Length))
    plain = _decrypt_stream(key, raw)
    if plain != stream.read_raw_bytes():
        raise ProtectionCheckError("a content stream decrypts differently for qpdf")
    if probe is not None and probe.first_content is not None:
        try:
            decoded = stream.read_bytes()
        except (pikepdf.PdfError, NotImplementedError):
            raise ProtectionCheckError("a content stream does not decode") from None
        if decoded != probe.first_content:
            raise ProtectionCheckError("its content differs from the input's")

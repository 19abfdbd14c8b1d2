"""ISO 32000-2 security handlers of revision 6, in our own code: algorithms 2.A, 2.B, 8, 9, 10.

:func:`hash_r6` is algorithm 2.B (SHA-256/384/512 and AES-128-CBC rounds), with hashlib and
the ``cryptography`` package (OpenSSL's AES). :func:`encrypt_values` writes an R=6 /Encrypt
dictionary (/U /UE /O /OE /Perms, algorithms 8 to 10) around a file key.
:class:`EncryptValues` holds those values, read from a file's bytes or from qpdf, and refuses
anything but V=5, R=6 with AESV3 for streams and strings. :func:`unlock` (algorithm 2.A)
finds the file key a password unlocks, after checking everything a protected report must
be: the password opens it, the empty password opens it neither as user nor as owner,
/Perms agrees with /P, and /P allows printing and denies every change.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import pikepdf
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from caaspp_cli.protect.pdfsyntax import (
    OBJECT_HEADER,
    last_encrypt_reference,
    last_object_header,
    parse_object,
)
from caaspp_cli.protect.policy import P_MODIFY_ANY, P_PRINT, P_PRINT_HIGH

__all__ = [
    "EncryptValues",
    "ProtectionCheckError",
    "aes_cbc_decrypt",
    "encrypt_values",
    "hash_r6",
    "new_encrypt_values",
    "unlock",
]


class ProtectionCheckError(Exception):
    """A protected file is not what it must be; the message says why (never a password).

    ``wrong_password``: the file is encrypted, and the password given does not open it.
    ``password_ok``: the password given does open it; something else is wrong.
    ``other_encryption``: the file is encrypted some other way than V=5, R=6 (RC4, AES-128,
    the withdrawn R=5), so the password was not tried.
    """

    def __init__(
        self,
        message: str,
        *,
        wrong_password: bool = False,
        password_ok: bool = False,
        other_encryption: bool = False,
    ) -> None:
        super().__init__(message)
        self.wrong_password = wrong_password
        self.password_ok = password_ok
        self.other_encryption = other_encryption


# --- ISO 32000-2 algorithms 2.A and 2.B -------------------------------------------------------
_HASHES: Final = (hashlib.sha256, hashlib.sha384, hashlib.sha512)


def _algorithm_2b(password: bytes, salt: bytes, udata: bytes = b"") -> bytes:
    k = hashlib.sha256(password + salt + udata).digest()
    rounds = 0
    while True:
        k1 = (password + k + udata) * 64
        encryptor = Cipher(algorithms.AES(k[:16]), modes.CBC(k[16:32])).encryptor()
        e = encryptor.update(k1) + encryptor.finalize()
        k = _HASHES[int.from_bytes(e[:16], "big") % 3](e).digest()
        rounds += 1
        if rounds >= 64 and e[-1] <= rounds - 32:
            return k[:32]


# A pure function of its inputs, so it is computed once for the same inputs: the check of
# a file written a moment ago reads the salts from the file and asks afresh, and only gets
# the writer's result if it asks exactly what the writer asked. Owner passwords never come
# here (they are thrown away, not kept as keys of a cache).
_user_hash: Final = lru_cache(maxsize=64)(_algorithm_2b)


def hash_r6(password: bytes, salt: bytes, udata: bytes = b"") -> bytes:
    """Algorithm 2.B: the R=6 hash of a password with an 8-byte salt (and /U for /O)."""
    return _user_hash(password, salt, udata) if not udata else _algorithm_2b(password, salt, udata)


@dataclass(frozen=True, slots=True)
class EncryptValues:
    """The values of an R=6 /Encrypt dictionary that the passwords and the key live in."""

    P: int
    O: bytes  # noqa: E741 - the names of the PDF keys
    U: bytes
    OE: bytes
    UE: bytes
    Perms: bytes
    encrypt_metadata: bool = True

    @classmethod
    def of(cls, pdf: pikepdf.Pdf) -> EncryptValues:
        """Read and check the /Encrypt dictionary of a file qpdf has opened."""
        encrypt = pdf.trailer.get("/Encrypt")
        if not isinstance(encrypt, pikepdf.Dictionary):
            raise ProtectionCheckError("it is not encrypted")
        plain = _plain(encrypt)
        assert isinstance(plain, dict)
        return cls.check(plain)

    @classmethod
    def read(cls, data: bytes) -> EncryptValues:
        """Read and check the /Encrypt dictionary of a file's bytes, without any key.

        The trailer names it (``/Encrypt n g R``) and it is an object of its own, never
        encrypted and never inside an object stream, so it can be read in place.
        """
        reference = last_encrypt_reference(data)
        if reference is None:
            raise ProtectionCheckError("it is not encrypted")
        number, generation = reference.groups()
        at = last_object_header(data, int(number), int(generation))
        if at is None:
            raise ProtectionCheckError("its /Encrypt dictionary is missing")
        header = OBJECT_HEADER.match(data, at)
        try:
            if header is None:
                raise ValueError("no object header")
            value, _ = parse_object(data, header.end())
        except (IndexError, ValueError):
            raise ProtectionCheckError("its /Encrypt dictionary cannot be read") from None
        if not isinstance(value, dict):
            raise ProtectionCheckError("its /Encrypt dictionary cannot be read")
        return cls.check(value)

    @classmethod
    def check(cls, encrypt: Mapping[str, object]) -> EncryptValues:
        """Values of an /Encrypt dictionary (as plain Python values) that must be V=5, R=6
        with AESV3 for streams and strings."""
        if encrypt.get("/Filter") != "/Standard":
            raise ProtectionCheckError("it does not use the standard security handler")
        if encrypt.get("/V") != 5 or encrypt.get("/R") != 6:
            raise ProtectionCheckError(_other_encryption(encrypt), other_encryption=True)
        filters = encrypt.get("/CF")
        std_cf = filters.get("/StdCF") if isinstance(filters, dict) else None
        if not isinstance(std_cf, dict) or std_cf.get("/CFM") != "/AESV3":
            raise ProtectionCheckError("its crypt filter is not AESV3", other_encryption=True)
        if encrypt.get("/StmF") != "/StdCF" or encrypt.get("/StrF") != "/StdCF":
            raise ProtectionCheckError(
                "its streams or strings are not encrypted with AESV3", other_encryption=True
            )
        fields = {key: encrypt.get(f"/{key}") for key in ("O", "U", "OE", "UE", "Perms")}
        permissions, metadata = encrypt.get("/P"), encrypt.get("/EncryptMetadata", True)
        if (
            not isinstance(permissions, int)
            or isinstance(permissions, bool)
            or not isinstance(metadata, bool)
            or not all(isinstance(value, bytes) for value in fields.values())
        ):
            raise ProtectionCheckError("its /Encrypt dictionary is incomplete")
        values = cls(P=permissions, encrypt_metadata=metadata, **fields)  # type: ignore[arg-type]
        if (
            len(values.U) < 48
            or len(values.O) < 48
            or len(values.UE) < 32
            or len(values.OE) < 32
            or len(values.Perms) < 16
        ):
            raise ProtectionCheckError("its /Encrypt dictionary is malformed")
        return values


def _other_encryption(encrypt: Mapping[str, object]) -> str:
    """Why an encryption other than V=5, R=6 is refused, in the words a person can act on."""
    version, revision = encrypt.get("/V"), encrypt.get("/R")
    if revision == 5:
        return (
            "it is encrypted with AES-256 revision 5 (R=5), which PDF 2.0 withdrew because its "
            "password check is weak; a protected report uses revision 6 (R=6)"
        )
    if (isinstance(version, int) and version < 5) or (isinstance(revision, int) and revision < 5):
        return "its encryption is weaker than AES-256"
    return "it is not encrypted with AES-256 (V=5, R=6)"


def _plain(value: object) -> object:
    """A pikepdf object as the values :func:`parse_object` gives: names as "/Name"
    strings, strings as bytes, dictionaries as dicts (direct objects only)."""
    if isinstance(value, pikepdf.Dictionary):
        return {key: _plain(value[key]) for key in value.keys()}  # noqa: SIM118 - pikepdf
    if isinstance(value, pikepdf.Name):
        return str(value)
    if isinstance(value, pikepdf.String):
        return bytes(value)
    if isinstance(value, bool | int):
        return value
    return None


def _aes_ecb(key: bytes, data: bytes, *, encrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 - /Perms is one block
    context = cipher.encryptor() if encrypt else cipher.decryptor()
    return context.update(data) + context.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _aes_cbc_encrypt_no_iv(key: bytes, data: bytes) -> bytes:
    """AES-256 in CBC mode with a zero IV and no padding: how /UE and /OE wrap the key."""
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return encryptor.update(data) + encryptor.finalize()


# --- Algorithms 8, 9 and 10: writing the values ------------------------------------------------
_SALTS: Final = 36  # validation and key salts of /U and /O, and 4 random bytes for /Perms


def encrypt_values(
    user: bytes, owner: bytes, file_key: bytes, permissions: int, salts: bytes
) -> EncryptValues:
    """Algorithms 8 (/U, /UE), 9 (/O, /OE) and 10 (/Perms) of ISO 32000-2: the R=6 values
    that wrap ``file_key`` for a user and an owner password (UTF-8, at most 127 bytes)."""
    if len(file_key) != 32 or len(salts) != _SALTS:
        raise ValueError("a file key of 32 bytes and 36 bytes of salts are needed")
    u_salts, o_salts, filler = salts[:16], salts[16:32], salts[32:]
    u = hash_r6(user, u_salts[:8]) + u_salts
    ue = _aes_cbc_encrypt_no_iv(hash_r6(user, u_salts[8:]), file_key)
    o = _algorithm_2b(owner, o_salts[:8], u) + o_salts
    oe = _aes_cbc_encrypt_no_iv(_algorithm_2b(owner, o_salts[8:], u), file_key)
    perms = permissions.to_bytes(4, "little", signed=True) + b"\xff" * 4 + b"Tadb" + filler
    return EncryptValues(
        P=permissions,
        O=o,
        U=u,
        OE=oe,
        UE=ue,
        Perms=_aes_ecb(file_key, perms, encrypt=True),
        encrypt_metadata=True,
    )


def new_encrypt_values(user: bytes, permissions: int) -> tuple[EncryptValues, bytes]:
    """(values, file key) for ``user``: a random file key, random salts, and a random owner
    password that nobody ever learns (it is not returned, and goes out of scope here).

    The owner password is 22 characters, 128 bits: far beyond the user password's 61, and
    each of its bytes costs 2.B work (its hashes run over the password and /U 64 times)."""
    file_key = secrets.token_bytes(32)
    owner = secrets.token_urlsafe(16).encode("ascii")
    return encrypt_values(user, owner, file_key, permissions, secrets.token_bytes(_SALTS)), file_key


@lru_cache(maxsize=1024)
def unlock(values: EncryptValues, password: bytes) -> bytes:
    """The file key that ``password`` unlocks under ``values``, once every check has passed.

    Checks that the password validates as the user password, that the empty password
    validates as neither user nor owner password, that /Perms decrypts with the key to
    ``adb`` and /P, and that /P allows printing and denies modification. Results are
    cached: they depend on nothing else.

    The empty password cannot validate as the user password once a non-empty one has:
    both would give the same 2.B hash with the same salt, a SHA-2 collision. So that check
    costs no hash; the owner check costs one.
    """
    if not password:
        raise ProtectionCheckError("an empty password protects nothing")
    u_hash, u_validation_salt, u_key_salt = values.U[:32], values.U[32:40], values.U[40:48]
    if hash_r6(password, u_validation_salt) != u_hash:
        raise ProtectionCheckError("the student's password does not open it", wrong_password=True)
    try:
        if hash_r6(b"", values.O[32:40], values.U[:48]) == values.O[:32]:
            raise ProtectionCheckError("it opens without a password, as its owner")
        intermediate = hash_r6(password, u_key_salt)
        key = aes_cbc_decrypt(intermediate, bytes(16), values.UE[:32])
        perms = _aes_ecb(key, values.Perms[:16])
        if perms[9:12] != b"adb":
            raise ProtectionCheckError("its /Perms do not decrypt with the file key")
        if int.from_bytes(perms[:4], "little", signed=True) != values.P:
            raise ProtectionCheckError("its /Perms and /P disagree")
        if perms[8:9] != (b"T" if values.encrypt_metadata else b"F"):
            raise ProtectionCheckError("its /Perms and /EncryptMetadata disagree")
        if not values.P & P_PRINT or not values.P & P_PRINT_HIGH:
            raise ProtectionCheckError("its permissions do not allow printing")
        if values.P & P_MODIFY_ANY:
            raise ProtectionCheckError("its permissions allow changes")
    except ProtectionCheckError as exc:
        raise ProtectionCheckError(str(exc), password_ok=True) from None
    return key

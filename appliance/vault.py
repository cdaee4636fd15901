"""Secrets at rest and in configuration files.

At rest, a secret (a private key, a passphrase) is sealed by envelope
encryption: a fresh data key encrypts it, and the appliance key (a file in the
data directory; on a database the machines of a cluster share, derived from
the operator's APPLIANCE_SECRET_KEY_FILE) encrypts the data key. Rotating the appliance key re-wraps the
small data keys only. A configuration file carries a secret masked, encrypted
with the administrator's passphrase, or in plain text.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from django.conf import settings

MASK = "*****"
PASSPHRASE_PREFIX = "$scrypt$"


class SecretError(Exception):
    """A secret could not be decrypted: wrong passphrase, or a foreign appliance key."""


def appliance_key_path():
    return settings.DATA_DIR / "appliance.key"


@functools.cache
def _appliance_keys() -> list[bytes]:
    """The appliance keys, one a line, newest first: rotation adds a line on top. On a shared database,
    the one key every machine derives from the operator's key file."""
    if settings.SHARED_KEY_FILE:
        shared = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"appliance secrets at rest")
        return [base64.urlsafe_b64encode(shared.derive(settings.SECRET_KEY.encode()))]
    path = appliance_key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key() + b"\n")
    return [line for line in path.read_bytes().split() if line]


@functools.cache
def _appliance_fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in _appliance_keys()])


ENVELOPE = "env1"


def seal(plaintext: str) -> str:
    """Encrypt a secret for storage: ``env1.<data key wrapped by the appliance key>.<secret under the data key>``."""
    data_key = Fernet.generate_key()
    wrapped = _appliance_fernet().encrypt(data_key).decode("ascii")
    sealed = Fernet(data_key).encrypt(plaintext.encode()).decode("ascii")
    return f"{ENVELOPE}.{wrapped}.{sealed}"


def unseal(token: str) -> str:
    """Decrypt a secret sealed on this appliance."""
    try:
        version, wrapped, sealed = token.split(".")
        if version != ENVELOPE:
            raise ValueError(version)
        data_key = _appliance_fernet().decrypt(wrapped.encode("ascii"))
        return Fernet(data_key).decrypt(sealed.encode("ascii")).decode()
    except (ValueError, InvalidToken, UnicodeError) as exc:
        raise SecretError("a stored secret does not match this appliance's key") from exc


def runtime_password() -> bytes:
    """The password of private-key files written for ssl.load_cert_chain (never plaintext on disk)."""
    return hmac.new(_appliance_keys()[0], b"runtime key files", hashlib.sha256).hexdigest().encode()


@functools.lru_cache(maxsize=16)
def _passphrase_fernet(passphrase: str, salt: bytes) -> Fernet:
    kdf = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(passphrase.encode())))


class PassphraseCipher:
    """Encrypts the secrets of one configuration file with the administrator's passphrase.

    One salt per file keeps the slow key derivation to once a file.
    """

    def __init__(self, passphrase: str):
        self.passphrase = passphrase
        self.salt = secrets.token_bytes(16)

    def encrypt(self, plaintext: str) -> str:
        token = _passphrase_fernet(self.passphrase, self.salt).encrypt(plaintext.encode())
        salt = base64.urlsafe_b64encode(self.salt).decode("ascii")
        return f"{PASSPHRASE_PREFIX}{salt}${token.decode('ascii')}"

    def decrypt(self, value: str) -> str:
        try:
            salt, token = value.removeprefix(PASSPHRASE_PREFIX).split("$", 1)
            fernet = _passphrase_fernet(self.passphrase, base64.urlsafe_b64decode(salt))
            return fernet.decrypt(token.encode("ascii")).decode()
        except (ValueError, InvalidToken, UnicodeError) as exc:
            raise SecretError("the passphrase does not decrypt it") from exc


def is_passphrase_encrypted(value: str) -> bool:
    return value.startswith(PASSPHRASE_PREFIX)

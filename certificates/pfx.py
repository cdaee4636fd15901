"""What a password-protected file asks of PBKDF2 before anyone runs it: the iteration counts of a
PKCS#12 file (its MAC and each encrypted part) and of an encrypted PKCS#8 key, read with pyasn1.

Each count is a price the file's maker sets: ``openssl pkcs12 -export -iter 50000000`` makes opening
the file cost minutes of CPU. The counts are in the clear, so they are read and refused above
``MAX_ITERATIONS`` before anything is decrypted. No cryptography here, and no Django.
"""

from __future__ import annotations

from pyasn1.codec.ber import decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc5652, rfc5958, rfc7292, rfc8018

# Real producers stay far below: OpenSSL 1.x–3.x 2,048, Windows 2,000, Java's keytool 10,000, this
# appliance's export 100,000, OWASP's advice for PBKDF2-SHA256 600,000. 1,000,000 leaves room above
# all of them and costs ~0.2 s a part here (a file is its MAC, its key and its certificates: ~0.6 s).
MAX_ITERATIONS = 1_000_000
# Parts a file may have at the cap (MAC, key, certificates, one spare): a file of a thousand small
# encrypted parts is refused as one of a thousand million iterations would be.
MAX_TOTAL_ITERATIONS = 4 * MAX_ITERATIONS
MAX_NESTING = 8  # safe contents bags inside safe contents bags

PKCS12_PBE = {
    rfc7292.pbeWithSHAAnd128BitRC4,
    rfc7292.pbeWithSHAAnd40BitRC4,
    rfc7292.pbeWithSHAAnd3_KeyTripleDES_CBC,
    rfc7292.pbeWithSHAAnd2_KeyTripleDES_CBC,
    rfc7292.pbeWithSHAAnd128BitRC2_CBC,
    rfc7292.pbeWithSHAAnd40BitRC2_CBC,
}
PBES1 = {
    rfc8018.pbeWithMD2AndDES_CBC,
    rfc8018.pbeWithMD2AndRC2_CBC,
    rfc8018.pbeWithMD5AndDES_CBC,
    rfc8018.pbeWithMD5AndRC2_CBC,
    rfc8018.pbeWithSHA1AndDES_CBC,
    rfc8018.pbeWithSHA1AndRC2_CBC,
}


class Unreadable(ValueError):
    """Not the structure it should be: the message says what in words."""


class TooCostly(ValueError):
    """An iteration count above the cap: the message names it and the limit."""


def _decode(data: bytes, spec):
    try:
        value, rest = decoder.decode(data, asn1Spec=spec)
    except (PyAsn1Error, RecursionError):
        raise Unreadable() from None
    if rest:
        raise Unreadable()
    return value


def encryption_iterations(algorithm) -> int:
    """The PBKDF2 (or PKCS#12 KDF) iteration count of an encryption AlgorithmIdentifier; 0 for none."""
    oid, parameters = algorithm["algorithm"], algorithm["parameters"]
    if oid == rfc8018.id_PBES2:
        pbes2 = _decode(bytes(parameters), rfc8018.PBES2_params())
        kdf = pbes2["keyDerivationFunc"]
        if kdf["algorithm"] != rfc8018.id_PBKDF2:
            raise Unreadable()
        return int(_decode(bytes(kdf["parameters"]), rfc8018.PBKDF2_params())["iterationCount"])
    if oid in PKCS12_PBE:
        return int(_decode(bytes(parameters), rfc7292.Pkcs_12PbeParams())["iterations"])
    if oid in PBES1:
        return int(_decode(bytes(parameters), rfc8018.PBEParameter())["iterationCount"])
    raise Unreadable()


def _bag_iterations(contents: bytes, depth: int = 0) -> list[int]:
    """The counts of the encrypted keys in a SafeContents, nested SafeContents included."""
    if depth > MAX_NESTING:
        raise Unreadable()
    counts = []
    for bag in _decode(contents, rfc7292.SafeContents()):
        kind, value = bag["bagId"], bytes(bag["bagValue"])
        if kind == rfc7292.id_pkcs8ShroudedKeyBag:
            shrouded = _decode(value, rfc7292.PKCS8ShroudedKeyBag())
            counts.append(encryption_iterations(shrouded["encryptionAlgorithm"]))
        elif kind == rfc7292.id_safeContentsBag:
            counts += _bag_iterations(value, depth + 1)
    return counts


def pkcs12_iterations(data: bytes) -> list[int]:
    """Every iteration count a PKCS#12 file asks for: its MAC's, each encrypted part's, each
    shrouded key's. ``Unreadable`` if it is not PKCS#12."""
    pfx = _decode(data, rfc7292.PFX())
    counts = [int(pfx["macData"]["iterations"])] if pfx["macData"].isValue else []
    if pfx["authSafe"]["contentType"] != rfc5652.id_data:
        raise Unreadable()  # public-key integrity mode: no importer makes it, OpenSSL reads none
    authenticated = bytes(_decode(bytes(pfx["authSafe"]["content"]), univ.OctetString()))
    for part in _decode(authenticated, rfc7292.AuthenticatedSafe()):
        kind, content = part["contentType"], bytes(part["content"])
        if kind == rfc5652.id_data:
            counts += _bag_iterations(bytes(_decode(content, univ.OctetString())))
        elif kind == rfc5652.id_encryptedData:
            encrypted = _decode(content, rfc5652.EncryptedData())
            algorithm = encrypted["encryptedContentInfo"]["contentEncryptionAlgorithm"]
            counts.append(encryption_iterations(algorithm))
        else:
            raise Unreadable()  # enveloped (public-key) privacy mode: nothing here opens it
    return counts


def check_pkcs12(data: bytes) -> None:
    """``TooCostly`` if opening ``data`` would run PBKDF2 over the cap, ``Unreadable`` if it is no
    PKCS#12 file; reads the clear structure only."""
    _check(pkcs12_iterations(data), "PKCS#12 file")


def check_encrypted_key(der: bytes) -> None:
    """The same for an encrypted PKCS#8 key (``-----BEGIN ENCRYPTED PRIVATE KEY-----``, as DER)."""
    info = _decode(der, rfc5958.EncryptedPrivateKeyInfo())
    _check([encryption_iterations(info["encryptionAlgorithm"])], "encrypted private key")


def _check(counts: list[int], what: str) -> None:
    highest = max(counts, default=0)
    if highest > MAX_ITERATIONS:
        raise TooCostly(
            f"The {what} asks for {highest:,} key derivation iterations: this appliance opens files of "
            f"at most {MAX_ITERATIONS:,} (export it again with fewer, e.g. openssl pkcs12 -export -iter 10000)"
        )
    if sum(counts) > MAX_TOTAL_ITERATIONS:
        raise TooCostly(
            f"The {what} asks for {sum(counts):,} key derivation iterations in all ({len(counts)} "
            f"encrypted parts): this appliance opens files of at most {MAX_TOTAL_ITERATIONS:,}"
        )

"""The slow cryptography, run as ``python -m certificates.worker`` by ``pki.in_worker`` so that a
deadline can stop it: opening a PKCS#12 file (PBKDF2, OpenSSL's RSA key check) and making a key.

A job comes as JSON on standard input and its result goes as JSON to standard output, keys as
unencrypted PKCS#8 PEM (the pipe is the parent's). No Django here: the child starts in ~0.1 s.
"""

from __future__ import annotations

import base64
import json
import sys

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

PEM = serialization.Encoding.PEM


def _key_pem(key) -> str:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def open_pkcs12(job: dict) -> dict:
    password = job["password"].encode() if job["password"] else None
    try:
        bundle = pkcs12.load_pkcs12(base64.b64decode(job["data"]), password)
    except UnsupportedAlgorithm:
        return {"refused": "unsupported"}
    except ValueError as exc:
        return {"refused": "password" if "Invalid password" in str(exc) else "unreadable"}
    certificate = bundle.cert
    return {
        "key": _key_pem(bundle.key) if bundle.key is not None else None,
        "certificate": certificate.certificate.public_bytes(PEM).decode() if certificate else None,
        "friendly_name": (certificate.friendly_name or b"").decode("utf-8", "replace") if certificate else "",
        "chain": [c.certificate.public_bytes(PEM).decode() for c in bundle.additional_certs],
    }


def generate(job: dict) -> dict:
    if "rsa_bits" in job:
        key = rsa.generate_private_key(public_exponent=65537, key_size=job["rsa_bits"])
    else:
        key = ec.generate_private_key(getattr(ec, job["curve"].upper())())  # "secp384r1": ec.SECP384R1
    return {"key": _key_pem(key)}


JOBS = {"open_pkcs12": open_pkcs12, "generate": generate}

if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump(JOBS[request["job"]](request), sys.stdout)

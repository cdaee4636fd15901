"""Benchmark: Create Self-Signed Certificate (key, certificate, CSR) against ``openssl req``.

Run: .venv/bin/python bench/certificate_creation.py [--runs-rsa2048 30] [--runs-rsa4096 10]
                                                   [--runs-ec256 30]

Ours is what Add Certificate and ``certconfig new`` do in ``certificates/store.py``
``create_self_signed``, without the database row: ``pki.generate_key``, ``pki.self_signed``,
``pki.signing_request`` and the PEM of each (key, certificate, CSR), timed in this process. The
key's sealing (``store.seal``: Fernet under the appliance key) is timed apart.

openssl's is two commands on the same machine, timed from start to exit (a process each):
``openssl req -x509 -newkey … -nodes`` (key and self-signed certificate, with the same
extensions: SAN, basicConstraints, extendedKeyUsage) and ``openssl req -new -key …`` (the CSR).
The time of ``openssl version`` (a process that does nothing) is shown too: openssl pays it twice.
Key generation alone is timed too (``pki.generate_key`` against ``openssl genpkey``): it is most of
the time for RSA, and it is where the two OpenSSL versions differ.

RSA key generation time varies a lot from key to key (it searches for primes), so each kind runs
many times, ours and openssl's alternately, and medians are compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cpu import machine_busy_seconds, own_cpu_seconds  # bench/cpu.py: the script's folder is on the path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
DATA_DIR = tempfile.mkdtemp(prefix="bench-certs-")
os.environ["APPLIANCE_DATA_DIR"] = DATA_DIR
os.environ["DJANGO_SETTINGS_MODULE"] = "appliance.settings"

import django  # noqa: E402

django.setup()

from cryptography.hazmat.backends.openssl import backend  # noqa: E402

from certificates import pki, store  # noqa: E402

NAME = "bench.example.com"
KINDS = {  # key type → openssl's -newkey arguments
    pki.KeyType.RSA2048: ["-newkey", "rsa:2048"],
    pki.KeyType.RSA4096: ["-newkey", "rsa:4096"],
    pki.KeyType.EC256: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
}
SUBJECT = f"/O=Bench/CN={NAME}"
EXTENSIONS = [
    "-addext", f"subjectAltName=DNS:{NAME}",
    "-addext", "basicConstraints=critical,CA:FALSE",
    "-addext", "extendedKeyUsage=serverAuth,clientAuth",
]  # fmt: skip


def ours(key_type: str) -> tuple[float, float]:
    """Seconds for key + certificate + CSR with their PEMs, and seconds to seal the key."""
    started = time.perf_counter()
    key = pki.generate_key(key_type)
    subject = pki.Subject(common_name=NAME, organization="Bench").name()
    certificate = pki.self_signed(key, subject, [NAME], 365)
    request = pki.signing_request(key, subject, [NAME])
    pki.private_key_pem(key), pki.certificate_pem(certificate), pki.csr_pem(request)
    made = time.perf_counter()
    store.seal(key)
    return made - started, time.perf_counter() - made


def openssl(key_type: str, folder: Path) -> float:
    key, certificate, request = folder / "key.pem", folder / "cert.pem", folder / "req.pem"
    started = time.perf_counter()
    subprocess.run(
        ["openssl", "req", "-x509", *KINDS[key_type], "-nodes", "-keyout", key, "-out", certificate,
         "-days", "365", "-subj", SUBJECT, *EXTENSIONS],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-key",
            key,
            "-out",
            request,
            "-subj",
            SUBJECT,
            EXTENSIONS[0],
            EXTENSIONS[1],
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


GENPKEY = {  # key type → openssl genpkey's arguments: the key alone
    pki.KeyType.RSA2048: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    pki.KeyType.RSA4096: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
    pki.KeyType.EC256: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
}


def key_alone(key_type: str) -> float:
    """Seconds for our key generation alone (no certificate, no CSR)."""
    started = time.perf_counter()
    pki.generate_key(key_type)
    return time.perf_counter() - started


def openssl_key_alone(key_type: str) -> float:
    started = time.perf_counter()
    subprocess.run(["openssl", "genpkey", *GENPKEY[key_type]], check=True, capture_output=True)
    return time.perf_counter() - started


def process_floor(runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["openssl", "version"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-rsa2048", type=int, default=30)
    parser.add_argument("--runs-rsa4096", type=int, default=10)
    parser.add_argument("--runs-ec256", type=int, default=30)
    options = parser.parse_args()
    runs = {
        pki.KeyType.RSA2048: options.runs_rsa2048,
        pki.KeyType.RSA4096: options.runs_rsa4096,
        pki.KeyType.EC256: options.runs_ec256,
    }
    started, busy_before, own_before = time.perf_counter(), machine_busy_seconds(), own_cpu_seconds()
    system = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    floor = process_floor()
    print(
        f"ours: cryptography with {backend.openssl_version_text()}; openssl command: {system}; "
        f"{os.cpu_count()} cores; an openssl process that does nothing: {floor * 1000:.1f} ms"
    )
    print(
        "| key | runs | ours ms (p10–p90) | seal ms | openssl ms (p10–p90) | ours ÷ openssl "
        "| key alone: ours ms | key alone: openssl genpkey ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-openssl-") as folder:
        for key_type, count in runs.items():
            mine, sealing, theirs, keys, their_keys = [], [], [], [], []
            for _ in range(count):
                made, sealed = ours(key_type)
                mine.append(made)
                sealing.append(sealed)
                theirs.append(openssl(key_type, Path(folder)))
                keys.append(key_alone(key_type))
                their_keys.append(openssl_key_alone(key_type))
            print(
                f"| {pki.KeyType(key_type).label} | {count} | {spread(mine)} | "
                f"{statistics.median(sealing) * 1000:.1f} | {spread(theirs)} | "
                f"{statistics.median(mine) / statistics.median(theirs):.2f} | "
                f"{statistics.median(keys) * 1000:.1f} | {statistics.median(their_keys) * 1000:.1f} |",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    other = (machine_busy_seconds() - busy_before - (own_cpu_seconds() - own_before)) / elapsed * 100
    print(f"({elapsed:.0f} s; other CPU {max(other, 0):.0f} % of one core, out of {os.cpu_count() * 100} %)")


def spread(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    low, high = ordered[len(ordered) // 10], ordered[-1 - len(ordered) // 10]
    return f"{statistics.median(ordered) * 1000:.1f} ({low * 1000:.0f}–{high * 1000:.0f})"


if __name__ == "__main__":
    try:
        main()
    finally:
        import shutil

        shutil.rmtree(DATA_DIR, ignore_errors=True)

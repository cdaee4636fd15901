"""Real test PKI made with the ``openssl`` command, as a CA and an administrator's tools would make it.

``make_pki(folder)`` gives a root CA, an intermediate CA it signed (CA:TRUE, keyCertSign) and an
unrelated root CA. Any CA signs a PEM signing request (``sign``) or issues a key and certificate
(``issue``, RSA or EC), valid now or for chosen dates (already expired, not yet valid). The module
functions turn certificates into DER, PKCS#7 and PKCS#12 files and encrypt keys.
"""

from __future__ import annotations

import datetime
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CONFIG = """\
[ca]
default_ca = test_ca

[test_ca]
dir = .
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = policy_anything
preserve = yes
email_in_dn = no
unique_subject = no
copy_extensions = copy

[policy_anything]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied

[req]
distinguished_name = req_dn

[req_dn]

[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

KEYS = {
    "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
}


def _run(args, input: bytes | None) -> subprocess.CompletedProcess:
    command = ["openssl", *(str(a) for a in args)]
    result = subprocess.run(command, input=input, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr.decode(errors='replace')}")
    return result


def openssl(*args, input: bytes | None = None) -> bytes:
    """Run ``openssl`` with ``args``; its standard output, or RuntimeError with its messages."""
    return _run(args, input).stdout


def openssl_info(*args, input: bytes | None = None) -> str:
    """Run ``openssl`` and return what it printed on both streams (``pkcs12 -info`` reports on stderr)."""
    result = _run(args, input)
    return (result.stdout + result.stderr).decode(errors="replace")


def _asn1_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y%m%d%H%M%SZ")


def new_key(path: Path, kind: str = "rsa") -> Path:
    """A PKCS#8 PEM private key: ``rsa`` (2048) or ``ec`` (P-256)."""
    openssl("genpkey", *KEYS[kind], "-out", path)
    return path


def new_request(folder: Path, key: Path, common_name: str, sans: list[str] | None = None) -> str:
    """A PEM signing request for ``key``; ``sans`` (DNS names) default to none, as many admins send."""
    args = ["req", "-new", "-config", _config(folder), "-key", key, "-subj", f"/CN={common_name}"]
    if sans:
        args += ["-addext", "subjectAltName=" + ",".join(f"DNS:{name}" for name in sans)]
    return openssl(*args).decode()


def _config(folder: Path) -> Path:
    path = folder / "openssl.cnf"
    if not path.exists():
        path.write_text(CONFIG.replace("dir = .", f"dir = {folder}"))
    return path


@dataclass
class Credential:
    """A certificate with its private key, in files; a CA's also signs."""

    name: str
    cert: Path
    key: Path
    folder: Path

    @property
    def cert_pem(self) -> str:
        return self.cert.read_text()

    @property
    def key_pem(self) -> str:
        return self.key.read_text()

    @property
    def cert_der(self) -> bytes:
        return to_der(self.cert)

    def sign(
        self,
        csr_pem: str | bytes,
        name: str,
        *,
        days: int = 365,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        ca: bool = False,
    ) -> Path:
        """Sign a PEM request as this CA (its extensions copied) into ``name``.pem; the certificate's path.

        With ``not_before``/``not_after`` (past or future), ``openssl ca -startdate/-enddate``;
        else ``openssl x509 -req -days``. ``ca``: CA:TRUE and keyCertSign instead of a server certificate.
        """
        request = self.folder / f"{name}.csr"
        request.write_text(csr_pem if isinstance(csr_pem, str) else csr_pem.decode())
        out = self.folder / f"{name}.pem"
        extensions = "v3_ca" if ca else "v3_leaf"
        if not_before is None and not_after is None:
            openssl(
                "x509", "-req", "-in", request, "-CA", self.cert, "-CAkey", self.key,
                "-set_serial", secrets.randbits(63), "-days", days, "-sha256",
                "-extfile", _config(self.folder), "-extensions", extensions,
                "-copy_extensions", "copy", "-out", out,
            )  # fmt: skip
            return out
        now = datetime.datetime.now(datetime.UTC)
        start = not_before or now - datetime.timedelta(minutes=5)
        end = not_after or start + datetime.timedelta(days=days)
        _ca(self.folder, "-cert", self.cert, "-keyfile", self.key, "-in", request, "-out", out,
            "-startdate", _asn1_time(start), "-enddate", _asn1_time(end), "-extensions", extensions)  # fmt: skip
        return out

    def issue(
        self,
        common_name: str,
        *,
        kind: str = "rsa",
        sans: list[str] | None = None,
        days: int = 365,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        ca: bool = False,
    ) -> Credential:
        """A new key (``rsa`` or ``ec``) and its certificate signed by this CA.

        A server certificate's SANs default to its common name.
        """
        name = _file_name(common_name)
        key = new_key(self.folder / f"{name}.key", kind)
        if sans is None and not ca:
            sans = [common_name]
        request = new_request(self.folder, key, common_name, sans)
        cert = self.sign(request, name, days=days, not_before=not_before, not_after=not_after, ca=ca)
        return Credential(common_name, cert, key, self.folder)


def _file_name(common_name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in common_name.lower()) + "-" + secrets.token_hex(3)


def _ca(folder: Path, *args) -> None:
    index = folder / "index.txt"
    if not index.exists():
        index.touch()
    (folder / "index.txt.attr").write_text("unique_subject = no\n")
    openssl("ca", "-batch", "-notext", "-rand_serial", "-config", _config(folder), "-outdir", folder, *args)


def self_signed(
    folder: Path,
    common_name: str,
    *,
    ca: bool = False,
    kind: str = "rsa",
    days: int = 3650,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Credential:
    """A self-signed certificate (``openssl ca -selfsign``): a root CA with ``ca``, else a server certificate."""
    name = _file_name(common_name)
    key = new_key(folder / f"{name}.key", kind)
    request = folder / f"{name}.csr"
    request.write_text(new_request(folder, key, common_name, None if ca else [common_name]))
    now = datetime.datetime.now(datetime.UTC)
    start = not_before or now - datetime.timedelta(minutes=5)
    end = not_after or start + datetime.timedelta(days=days)
    cert = folder / f"{name}.pem"
    _ca(folder, "-selfsign", "-keyfile", key, "-in", request, "-out", cert,
        "-extensions", "v3_ca" if ca else "v3_leaf",
        "-startdate", _asn1_time(start), "-enddate", _asn1_time(end))  # fmt: skip
    return Credential(common_name, cert, key, folder)


@dataclass
class PKI:
    root: Credential  # "Test Root CA"
    intermediate: Credential  # "Test Intermediate CA", signed by the root
    other: Credential  # "Other Root CA", unrelated to both
    folder: Path


def make_pki(folder: Path) -> PKI:
    folder.mkdir(parents=True, exist_ok=True)
    root = self_signed(folder, "Test Root CA", ca=True)
    intermediate = root.issue("Test Intermediate CA", ca=True, days=1825)
    other = self_signed(folder, "Other Root CA", ca=True)
    return PKI(root, intermediate, other, folder)


# --- file formats ------------------------------------------------------------


def to_der(cert: Path) -> bytes:
    return openssl("x509", "-in", cert, "-outform", "DER")


def to_p7b(*certs: Path, der: bool = False) -> bytes:
    """A PKCS#7 certificate bundle (``.p7b``) of ``certs``, PEM or DER."""
    args = ["crl2pkcs7", "-nocrl"]
    for cert in certs:
        args += ["-certfile", cert]
    return openssl(*args, "-outform", "DER" if der else "PEM")


def bundle(*parts: Path | str) -> bytes:
    """PEM files (or PEM texts) concatenated, in the order given."""
    return "".join((p.read_text() if isinstance(p, Path) else p).strip() + "\n" for p in parts).encode()


def encrypt_key(key: Path, passphrase: str, *, traditional: bool = False) -> str:
    """The key encrypted with AES-256: PKCS#8 (``openssl pkey``), or the traditional OpenSSL 1.x form."""
    args = ["pkey", "-in", key, "-aes256", "-passout", f"pass:{passphrase}"]
    out = openssl(*args, *(["-traditional"] if traditional else []))
    return out.decode()


def pkcs12_file(
    out: Path,
    credential: Credential,
    password: str,
    *,
    chain: tuple[Path, ...] = (),
    options: tuple[str, ...] = (),
    with_key: bool = True,
    friendly_name: str | None = None,
) -> bytes:
    """``openssl pkcs12 -export`` of ``credential`` (+ ``chain``) with extra ``options`` (``-legacy``…)."""
    args = ["pkcs12", "-export", "-in", credential.cert, "-passout", f"pass:{password}", "-out", out]
    args += ["-inkey", credential.key] if with_key else ["-nokeys"]
    if chain:
        chain_file = out.with_suffix(".chain.pem")
        chain_file.write_bytes(bundle(*chain))
        args += ["-certfile", chain_file]
    if friendly_name is not None:
        args += ["-name", friendly_name]
    openssl(*args, *options)
    return out.read_bytes()


def keytool_file(out: Path, source: Path, password: str) -> bytes:
    """The PKCS#12 file Java's keytool writes from ``source`` (PBEWithHmacSHA256AndAES_256, HmacPBESHA256).

    Without a JDK, ``openssl`` writes a file with the same algorithms.
    """
    keytool = shutil.which("keytool")
    if keytool is None:
        pem = out.with_suffix(".pem")
        pem.write_bytes(openssl("pkcs12", "-in", source, "-passin", f"pass:{password}", "-nodes"))
        openssl("pkcs12", "-export", "-in", pem, "-passout", f"pass:{password}", "-out", out,
                "-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha256", "-iter", "10000")  # fmt: skip
        return out.read_bytes()
    command = [keytool, "-importkeystore", "-noprompt",
               "-srckeystore", source, "-srcstoretype", "PKCS12", "-srcstorepass", password,
               "-destkeystore", out, "-deststoretype", "PKCS12", "-deststorepass", password]  # fmt: skip
    result = subprocess.run([str(a) for a in command], capture_output=True, check=False)
    if result.returncode != 0:  # keytool wants passwords of 6 characters or more
        raise RuntimeError(f"keytool failed:\n{(result.stdout + result.stderr).decode(errors='replace')}")
    return out.read_bytes()

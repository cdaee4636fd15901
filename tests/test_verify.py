"""The one verification of a peer's certificate (``certificates.verify``), with certificates made by
``openssl`` as CAs and administrators make them, good and imperfect: chains in any order, repeated or
missing intermediates, unknown and self-signed issuers, dates, names (SAN, CN, wildcards, case), weak
keys, CAs without keyUsage, an intermediate that is no CA, v1 certificates.
"""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509

from certificates import trust, verify
from tests.pki_factory import make_pki, new_request, openssl, self_signed

DOMAIN = "dest.test"
NO_ISSUER = "unable to get local issuer certificate: the chain leads to no enabled Certificate Authority"

# Extensions the factory has no option for, as some real CAs write them.
EXTENSIONS = """\
[req]
distinguished_name = req_dn

[req_dn]

[ca_without_key_usage]
basicConstraints = critical, CA:TRUE
subjectKeyIdentifier = hash

[no_basic_constraints]
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:{name}
"""


def load(*paths: Path) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(path.read_bytes()) for path in paths]


def made(folder: Path, name: str, section: str | None, *, issuer=None, bits: int = 2048):
    """A certificate for ``name`` with the extensions of ``section`` (None: none at all, a v1
    certificate), signed by ``issuer`` (cert, key) or by its own key; (cert path, key path)."""
    stem = folder / f"{''.join(c if c.isalnum() else '-' for c in name)}-{secrets.token_hex(3)}"
    config = stem.with_suffix(".cnf")
    config.write_text(EXTENSIONS.format(name=name))
    key = stem.with_suffix(".key")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", key)
    cert = stem.with_suffix(".pem")
    extensions = ["-extfile", config, "-extensions", section] if section else []
    if issuer is None:
        request = stem.with_suffix(".csr")
        openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-config", config, "-out", request)
        openssl("x509", "-req", "-in", request, "-key", key, "-days", 30, *extensions, "-out", cert)
    else:
        request = stem.with_suffix(".csr")
        openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-config", config, "-out", request)
        openssl("x509", "-req", "-in", request, "-CA", issuer[0], "-CAkey", issuer[1],
                "-set_serial", secrets.randbits(63), "-days", 30, *extensions, "-out", cert)  # fmt: skip
    return cert, key


@pytest.fixture(name="pki", scope="module")
def pki_fixture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verify-pki")
    authorities = make_pki(folder)
    root, intermediate = authorities.root, authorities.intermediate
    second = intermediate.issue("Second Intermediate CA", ca=True)  # root → intermediate → second
    now = datetime.datetime.now(datetime.UTC)
    weak_key = folder / "weak.key"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", weak_key)
    no_key_usage_root = made(folder, "Root Without keyUsage", "ca_without_key_usage")
    not_a_ca = made(folder, "Intermediate Without basicConstraints", "no_basic_constraints",
                    issuer=(root.cert, root.key))  # fmt: skip
    v1_intermediate = made(folder, "v1 Intermediate", None, issuer=(root.cert, root.key))
    return SimpleNamespace(
        folder=folder,
        root=root.cert,
        other=authorities.other.cert,
        intermediate=intermediate.cert,
        second=second.cert,
        leaf=intermediate.issue(DOMAIN).cert,
        leaf_of_second=second.issue(DOMAIN).cert,
        mx_leaf=intermediate.issue(f"mx.{DOMAIN}").cert,
        ec_leaf=intermediate.issue(DOMAIN, kind="ec").cert,
        self_signed=self_signed(folder, DOMAIN).cert,
        expired=intermediate.issue(
            DOMAIN, not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1)
        ).cert,
        not_yet_valid=intermediate.issue(
            DOMAIN, not_before=now + datetime.timedelta(days=1), not_after=now + datetime.timedelta(days=30)
        ).cert,
        cn_only=intermediate.issue(DOMAIN, sans=[]).cert,
        san_elsewhere=intermediate.issue(DOMAIN, sans=["mx.other.test", "other.test"]).cert,
        wildcard=intermediate.issue(f"*.{DOMAIN}").cert,
        mixed_case=intermediate.issue("MX.Dest.TEST").cert,
        weak_leaf=intermediate.sign(new_request(folder, weak_key, DOMAIN, [DOMAIN]), "weak-leaf"),
        no_key_usage_root=no_key_usage_root[0],
        leaf_of_no_key_usage_root=made(folder, DOMAIN, "leaf", issuer=no_key_usage_root)[0],
        not_a_ca=not_a_ca[0],
        leaf_of_not_a_ca=made(folder, DOMAIN, "leaf", issuer=not_a_ca)[0],
        v1_intermediate=v1_intermediate[0],
        leaf_of_v1_intermediate=made(folder, DOMAIN, "leaf", issuer=v1_intermediate)[0],
        v1_leaf=made(folder, DOMAIN, None, issuer=(intermediate.cert, intermediate.key))[0],
    )


def peer(pki, *names: str, expected=(DOMAIN,), anchors=("root",), at=None) -> verify.Verdict:
    """``verify_peer`` on the certificates named (attributes of ``pki``), the server's first."""
    return verify.verify_peer(
        load(*(getattr(pki, name) for name in names)),
        list(expected),
        load(*(getattr(pki, name) for name in anchors)),
        at,
    )


# --- the chain -------------------------------------------------------------------------------------


def test_a_good_chain_verifies(pki):
    verdict = peer(pki, "leaf", "intermediate")
    assert (verdict.valid, verdict.chain_valid, verdict.chain_reason) == (True, True, "ok")
    assert (verdict.names, verdict.matched, verdict.reason) == ([DOMAIN], DOMAIN, "ok")


def test_an_ec_server_certificate_verifies(pki):
    assert peer(pki, "ec_leaf", "intermediate").valid


@pytest.mark.parametrize(
    "sent",
    [
        ("leaf_of_second", "intermediate", "second"),  # the upper intermediate first
        ("leaf_of_second", "second", "intermediate"),  # the usual order
        ("leaf_of_second", "root", "intermediate", "second"),  # the root sent too, first
    ],
    ids=["wrong-order", "right-order", "root-included"],
)
def test_intermediates_may_come_in_any_order(pki, sent):
    assert peer(pki, *sent).valid


def test_duplicate_intermediates_are_harmless(pki):
    assert peer(pki, "leaf", "intermediate", "intermediate", "intermediate").valid


def test_a_missing_intermediate_fails(pki):
    verdict = peer(pki, "leaf")
    assert not verdict.valid
    assert verdict.reason == verdict.chain_reason == NO_ISSUER
    assert verdict.matched == DOMAIN  # the name is fine; the chain is not


def test_a_chain_to_another_ca_fails(pki):
    verdict = peer(pki, "leaf", "intermediate", anchors=("other",))
    assert (verdict.valid, verdict.reason) == (False, NO_ISSUER)


def test_the_intermediate_as_anchor_is_enough(pki):
    assert peer(pki, "leaf", anchors=("intermediate",)).valid


def test_a_self_signed_certificate_fails_even_with_the_right_name(pki):
    verdict = peer(pki, "self_signed")
    assert (verdict.valid, verdict.reason, verdict.matched) == (False, "self-signed certificate", DOMAIN)


def test_an_expired_certificate_fails(pki):
    leaf = load(pki.expired)[0]
    verdict = peer(pki, "expired", "intermediate")
    assert not verdict.valid
    assert verdict.reason == (
        f"certificate has expired (not valid after {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC)"
    )


def test_a_certificate_not_yet_valid_fails(pki):
    leaf = load(pki.not_yet_valid)[0]
    verdict = peer(pki, "not_yet_valid", "intermediate")
    assert not verdict.valid
    assert verdict.reason == (
        f"certificate is not yet valid (not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC)"
    )


def test_the_time_of_verification_can_be_given(pki):
    leaf = load(pki.not_yet_valid)[0]
    during = leaf.not_valid_before_utc + datetime.timedelta(days=1)  # the CAs are valid then too
    assert peer(pki, "not_yet_valid", "intermediate", at=during).valid
    after = leaf.not_valid_after_utc + datetime.timedelta(days=1)
    assert peer(pki, "not_yet_valid", "intermediate", at=after).reason.startswith("certificate has expired")


def test_no_anchors_fails_in_words(pki):
    verdict = peer(pki, "leaf", "intermediate", anchors=())
    assert (verdict.valid, verdict.reason) == (False, "no Certificate Authorities list is enabled")


def test_no_certificate_fails_in_words(pki):
    verdict = verify.verify_peer([], [DOMAIN], load(pki.root))
    assert (verdict.valid, verdict.reason, verdict.names) == (False, "no certificate was presented", [])


# --- keys and extensions -------------------------------------------------------------------------------


def test_an_rsa_1024_server_key_is_refused(pki):
    verdict = peer(pki, "weak_leaf", "intermediate")
    assert not verdict.valid
    assert verdict.reason == f"weak key: CN={DOMAIN} has an RSA key of 1024 bits (under 2048)"


def test_a_ca_without_key_usage_is_accepted(pki):
    root = load(pki.no_key_usage_root)[0]
    with pytest.raises(x509.ExtensionNotFound):
        root.extensions.get_extension_for_class(x509.KeyUsage)
    assert peer(pki, "leaf_of_no_key_usage_root", anchors=("no_key_usage_root",)).valid


@pytest.mark.parametrize(
    "intermediate", ["not_a_ca", "v1_intermediate"], ids=["keyUsage-without-basicConstraints", "v1"]
)
def test_an_intermediate_that_is_not_a_ca_is_refused(pki, intermediate):
    certificate = load(getattr(pki, intermediate))[0]
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    verdict = peer(pki, f"leaf_of_{intermediate}", intermediate)
    assert not verdict.valid
    assert verdict.reason != "ok"


def test_a_v1_server_certificate_is_accepted(pki):
    """Real servers still send them (issue 7 names them among the imperfect certificates to accept, with
    CN without SAN, CAs without keyUsage and chains in the wrong order); the policy judges none of the
    server certificate's own extensions, and a v1 certificate is one without any."""
    assert load(pki.v1_leaf)[0].version == x509.Version.v1
    verdict = peer(pki, "v1_leaf", "intermediate")
    assert (verdict.valid, verdict.names) == (True, [DOMAIN])


# --- the name --------------------------------------------------------------------------------------------


def test_the_cn_counts_when_there_is_no_san(pki):
    with pytest.raises(x509.ExtensionNotFound):
        load(pki.cn_only)[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    verdict = peer(pki, "cn_only", "intermediate")
    assert (verdict.valid, verdict.names) == (True, [DOMAIN])


def test_with_a_san_the_cn_is_ignored(pki):
    verdict = peer(pki, "san_elsewhere", "intermediate")
    assert verdict.chain_valid and not verdict.valid
    assert verdict.names == ["mx.other.test", "other.test"]
    assert verdict.reason == f"hostname mismatch: {DOMAIN} is not in mx.other.test, other.test"


def test_the_host_name_matches_when_the_domain_does_not(pki):
    verdict = peer(pki, "mx_leaf", "intermediate", expected=(DOMAIN, f"mx.{DOMAIN}"))
    assert (verdict.valid, verdict.matched) == (True, f"mx.{DOMAIN}")
    verdict = peer(pki, "mx_leaf", "intermediate", expected=(DOMAIN, "127.0.0.1"))
    assert not verdict.valid
    assert verdict.reason == f"hostname mismatch: {DOMAIN} or 127.0.0.1 is not in mx.{DOMAIN}"


@pytest.mark.parametrize(
    ("expected", "valid"),
    [(f"mx.{DOMAIN}", True), (DOMAIN, False), (f"a.mx.{DOMAIN}", False), ("mx.other.test", False)],
)
def test_a_wildcard_stands_for_one_whole_label(pki, expected, valid):
    verdict = peer(pki, "wildcard", "intermediate", expected=(expected,))
    assert verdict.names == [f"*.{DOMAIN}"]
    assert verdict.valid is valid


@pytest.mark.parametrize(
    ("pattern", "hostname", "matches"),
    [
        ("*.dest.test", "mx.dest.test", True),
        ("*.dest.test", "dest.test", False),
        ("*.dest.test", "a.b.dest.test", False),
        ("*.dest.test", ".dest.test", False),
        ("mx*.dest.test", "mx1.dest.test", False),  # partial-label wildcards are not honoured
        ("*.*.test", "a.b.test", False),
        ("mx.*.test", "mx.dest.test", False),
        ("dest.test.", "dest.test", True),  # a trailing dot is the same name
        ("DEST.test", "dest.TEST", True),
    ],
)
def test_name_matches(pattern, hostname, matches):
    assert verify.name_matches(pattern, hostname) is matches


def test_names_are_compared_without_regard_to_case(pki):
    verdict = peer(pki, "mixed_case", "intermediate", expected=("mx.DEST.test",))
    assert verdict.names == ["mx.dest.test"]
    assert (verdict.valid, verdict.matched) == (True, "mx.DEST.test")


# --- the anchors ------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("error::cryptography.utils.CryptographyDeprecationWarning")
def test_the_system_list_loads_as_anchors_without_deprecated_certificates():
    """Mozilla's bundle holds a root with a negative serial number; cryptography warns that loading it
    will become an error, which would make every Verify delivery fail while the System List is on."""
    config = {"certificate_authorities": [{"system_list_enabled": True, "custom_list_enabled": False}]}
    anchors = trust.anchors(config)
    assert len(anchors) == len(trust.system_list())

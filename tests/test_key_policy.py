"""Expensive work is bounded: a PKCS#12 file over the iteration cap and keys outside the key policy
are refused before any expensive work, on every way in (the pages, certconfig's store calls, a
configuration file), with files made by ``openssl``."""

from __future__ import annotations

import re
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from appliance import configfile, workflow
from appliance.config.levels import CLUSTER
from appliance.config.xmlfile import ConfigFileError, SecretMode
from certificates import pfx, pki, store
from certificates.models import Certificate
from tests.certificate_helpers import stage
from tests.pki_factory import openssl, pkcs12_file, self_signed

POLICY = "use RSA 2048–8192 bits or ECDSA P-256/P-384/P-521"


def key_with(tmp_path, name: str, *options: str) -> str:
    path = tmp_path / f"{name}.pem"
    openssl("genpkey", *options, "-out", path)
    return path.read_text()


def import_fields(data: bytes) -> dict:
    return {"option": "import", "cert_pass": "pw", "cert_file": SimpleUploadedFile("f.p12", data)}


@pytest.fixture
def over_the_cap(tmp_path):
    """A PKCS#12 file one iteration over the cap: opening it would cost over a second a part."""
    credential = self_signed(tmp_path, "costly.example.org")
    iterations = str(pfx.MAX_ITERATIONS + 1)
    return pkcs12_file(tmp_path / "costly.p12", credential, "pw", options=("-iter", iterations))


def test_a_pkcs12_file_over_the_cap_is_refused_at_once(over_the_cap):
    started = time.monotonic()
    with pytest.raises(pki.CertificateError) as refusal:
        pki.read_pkcs12(over_the_cap, "pw")
    assert time.monotonic() - started < 0.2
    assert str(refusal.value).startswith(
        "The PKCS#12 file asks for 1,000,001 key derivation iterations: this appliance opens files of "
        "at most 1,000,000"
    )


def test_a_pkcs12_file_at_usual_counts_opens(tmp_path):
    credential = self_signed(tmp_path, "usual.example.org")
    for iterations in ("2048", "600000"):
        data = pkcs12_file(tmp_path / f"{iterations}.p12", credential, "pw", options=("-iter", iterations))
        assert pki.common_name(pki.read_pkcs12(data, "pw").certificate) == "usual.example.org"


def test_something_else_than_pkcs12_is_refused_in_words(tmp_path):
    credential = self_signed(tmp_path, "pem.example.org")
    with pytest.raises(pki.CertificateError, match="not a readable PKCS#12 file"):
        pki.read_pkcs12(credential.cert.read_bytes(), "pw")


@pytest.mark.parametrize("user", ["admin", "read_only"])
def test_the_import_page_refuses_the_costly_file_at_once(request, login, user, over_the_cap):
    client = login(request.getfixturevalue(user))
    started = time.monotonic()
    response = client.post(reverse("certificates:add"), import_fields(over_the_cap))
    assert time.monotonic() - started < 1
    assert response.status_code == 400
    [message] = response.context["form"].errors["cert_file"]
    assert "at most 1,000,000" in message
    assert not workflow.has_uncommitted_changes()


@pytest.mark.parametrize(
    ("options", "name"),
    [
        (("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"), "ECDSA secp256k1"),
        (("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:brainpoolP512r1"), "ECDSA brainpoolP512r1"),
        (("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"), "RSA-1024"),
        (("-algorithm", "ED25519"), "Ed25519PrivateKey"),
    ],
)
def test_keys_outside_the_policy_are_refused(tmp_path, options, name):
    with pytest.raises(pki.KeyRefused) as refusal:
        pki.load_private_key(key_with(tmp_path, "key", *options))
    assert str(refusal.value) == f"{name} keys are not supported: {POLICY}"


@pytest.fixture(scope="module")
def rsa_8448(tmp_path_factory):
    """The cheapest RSA key over 8192 bits openssl makes (~15 s here); OpenSSL's check of it takes ~10 s."""
    return key_with(
        tmp_path_factory.mktemp("big"), "rsa8448", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:8448"
    )


def test_an_rsa_key_over_8192_bits_is_refused_before_it_is_checked(rsa_8448):
    started = time.monotonic()
    with pytest.raises(pki.KeyRefused, match=f"^RSA-8448 keys are not supported: {POLICY}$"):
        pki.load_private_key(rsa_8448)
    assert time.monotonic() - started < 0.5


def test_pasting_a_key_outside_the_policy_is_refused(admin, tmp_path):
    credential = self_signed(tmp_path, "k1.example.org")
    key = key_with(tmp_path, "k1", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1")
    with pytest.raises(pki.KeyRefused, match="ECDSA secp256k1 keys are not supported"):
        stage(admin, lambda: store.paste(CLUSTER, "k1", credential.cert.read_bytes(), key))


def test_a_configuration_file_with_a_key_outside_the_policy_is_refused_with_its_line(admin, rsa_8448):
    document = configfile.running_document(admin, SecretMode.PLAIN)
    document = re.sub(
        r"<private_key>.*?</private_key>",
        f"<private_key>{rsa_8448}</private_key>",
        document,
        count=1,
        flags=re.S,
    )
    line = document[: document.index("<private_key>")].count("\n") + 1
    started = time.monotonic()
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document.encode("latin-1"), None, "big.xml")
    assert time.monotonic() - started < 2
    assert error.value.problems == [
        f"line {line}: <private_key> is refused: RSA-8448 keys are not supported: {POLICY}"
    ]


def test_renewal_keys_stay_inside_the_policy(admin):
    key = store.renewal_key(CLUSTER, "Demo")
    assert pki.key_description(key) == "RSA 2048"
    stage(admin, lambda: store.renew(CLUSTER, "Demo", new_key=True, key=key))
    entry = Certificate.objects.at(CLUSTER).get(name="Demo")
    assert pki.public_key_id(entry.certificate) == pki.public_key_id(key)

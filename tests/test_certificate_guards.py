"""Edges found in review: confirmations from the console, rollback checks order, malformed certificate sections."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import PermissionDenied

from appliance import workflow
from appliance.config.levels import CLUSTER
from appliance.config.xmlfile import ConfigFileError
from certificates import downloads, pki, store
from certificates.models import Certificate
from tests.console import run


def create_mail(user, key_type=pki.KeyType.EC256):
    subject = pki.Subject(common_name="mail.example.org")
    workflow.submit(
        user, "mail", lambda: store.create_self_signed(CLUSTER, "Mail", subject, 30, [], key_type)
    )


def test_console_clear_asks_then_force_confirms_destroying_a_downloaded_request(admin):
    create_mail(admin)
    downloads.record(Certificate.objects.at(CLUSTER).get(name="Mail"), admin)
    with pytest.raises(SystemExit) as exit_status:
        run("clear")
    assert exit_status.value.code == 1
    assert Certificate.objects.at(CLUSTER).filter(name="Mail").exists()
    assert run("clear", "--force") == ("Changes cleared.\n", "")
    assert not Certificate.objects.at(CLUSTER).filter(name="Mail").exists()


def test_console_rollback_force_confirms(admin):
    create_mail(admin)
    workflow.commit(admin, "mail")
    downloads.record(Certificate.objects.at(CLUSTER).get(name="Mail"), admin)
    with pytest.raises(workflow.ConfirmationNeeded):
        workflow.rollback_to(admin, 1)
    assert run("rollbackconfig", "--to", "1", "--force")[0] == "Version 1 staged. Use commit to apply it.\n"


def test_rollback_checks_role_and_lock_before_asking(admin, guest, second_admin, read_only):
    create_mail(admin)
    workflow.commit(admin, "mail")
    downloads.record(Certificate.objects.at(CLUSTER).get(name="Mail"), admin)
    with pytest.raises(PermissionDenied):
        workflow.rollback_to(guest, 1)
    assert isinstance(workflow.rollback_to(read_only, 1), workflow.Preview)
    workflow.submit(second_admin, "hold the lock", lambda: store.renew(CLUSTER, "Demo"))
    with pytest.raises(workflow.ChangeRefused, match=r"^bob has uncommitted changes since \d\d:\d\d$"):
        workflow.rollback_to(admin, 1)


def test_renewing_with_a_new_key_keeps_the_curve(admin):
    create_mail(admin, pki.KeyType.EC384)
    workflow.submit(admin, "renew", lambda: store.renew(CLUSTER, "Mail", new_key=True))
    key = store.unseal(Certificate.objects.at(CLUSTER).get(name="Mail").private_key_sealed)
    assert key.curve.name == "secp384r1"


def section_document(inner: str) -> bytes:
    demo = Certificate.objects.at(CLUSTER).get(name="Demo")
    from appliance import vault

    return (
        "<config><certificates><certificate><certificate_name>Demo</certificate_name>"
        f"<certificate_pem>{demo.certificate_pem}</certificate_pem>{inner}"
        f"<private_key>{vault.unseal(demo.private_key_sealed)}</private_key>"
        "</certificate></certificates></config>"
    ).encode()


def test_an_empty_repeated_element_is_refused(admin):
    from appliance import configfile

    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, section_document("<intermediate_certificate/>"), None, "empty.xml")
    assert error.value.problems == [
        "line 22: <intermediate_certificate> is empty: leave the element out instead"
    ]


def test_a_renewal_key_without_its_request_is_refused(admin):
    from appliance import configfile, vault

    other = vault.unseal(store.seal(pki.generate_key(pki.KeyType.EC256)))
    with pytest.raises(ConfigFileError) as error:
        configfile.load(
            admin, section_document(f"<pending_private_key>{other}</pending_private_key>"), None, "p.xml"
        )
    assert error.value.problems == [
        "line 22: <pending_private_key> belongs to a renewal: it needs the <csr_pem> made with it"
    ]


def test_an_intermediate_listed_twice_is_named_as_such(admin, tmp_path):
    from appliance import configfile
    from tests.pki_factory import make_pki

    authority = make_pki(tmp_path)
    leaf = authority.intermediate.issue("dup.example.org")
    document = (
        "<config><certificates><certificate><certificate_name>Dup</certificate_name>"
        f"<certificate_pem>{leaf.cert_pem}</certificate_pem>"
        f"<intermediate_certificate>{authority.intermediate.cert_pem}</intermediate_certificate>"
        f"<intermediate_certificate>{authority.intermediate.cert_pem}</intermediate_certificate>"
        f"<private_key>{leaf.key_pem}</private_key></certificate></certificates></config>"
    ).encode()
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document, None, "dup.xml")
    [problem] = error.value.problems
    assert problem.endswith("<intermediate_certificate> lists the same certificate twice")


def damaged_rsa_key_pem() -> str:
    """An RSA key whose private exponents do not fit its primes (both CRT and plain signing go wrong)."""
    good = pki.generate_key(pki.KeyType.RSA2048).private_numbers()
    damaged = rsa.RSAPrivateNumbers(
        p=good.p,
        q=good.q,
        d=good.d + 2,
        dmp1=good.dmp1 + 2,
        dmq1=good.dmq1,
        iqmp=good.iqmp,
        public_numbers=good.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    return pki.private_key_pem(damaged)


def test_a_damaged_rsa_key_in_a_configuration_file_is_refused_by_name():
    with pytest.raises(
        pki.CertificateError, match="^The private key is damaged: its parts do not belong together$"
    ):
        pki.load_private_key(damaged_rsa_key_pem(), thorough=False)


def test_a_damaged_rsa_key_entering_one_at_a_time_gets_openssls_full_check():
    # Parsed first (its size checked against the key policy), then OpenSSL's check says it is damaged.
    with pytest.raises(
        pki.CertificateError, match="^The private key is damaged: its parts do not belong together$"
    ):
        pki.load_private_key(damaged_rsa_key_pem())

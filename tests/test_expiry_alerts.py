"""Certificate expiry alerts: the running gateway mails the alert recipients once per threshold.

Real certificates from the test PKI are committed as appliance certificates and Custom List CAs; the
gateway of ``gateway_fixtures`` (its delivery loop running, a spool and an alert record of the test's
own) sends its alerts through an SMTP route to a receiving server on loopback, which shows what came.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email
import email.policy

import pytest
from cryptography import x509

from appliance import alerts, workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from certificates import expiry, expiry_alerts, pki
from certificates import store as certificate_store
from destinations import routes
from gateway import alert_mail, maillog
from gateway.expiry_alerts import ExpiryAlerts
from gateway.spool import Spool
from listeners import store as listener_store
from tests.delivery_fixtures import (  # noqa: F401 (fixtures)
    PLAIN,
    receivers_fixture,
    running,
    server_pki_fixture,
    wait_until,
)
from tests.gateway_fixtures import IN, gateway_fixture, loop_thread_fixture, mail_log_fixture  # noqa: F401
from tests.pki_factory import PKI, bundle, make_pki

HOST = "esa.example.com"  # the hostname of the test appliance
OPS = "ops@alerts.test"
DAY = datetime.timedelta(days=1)


@pytest.fixture(name="authorities", scope="module")
def authorities_fixture(tmp_path_factory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("expiry-pki"))


def ends_in(days: float) -> datetime.datetime:
    """A Not Valid After ``days`` from now, to the second (what openssl writes)."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    return moment.replace(microsecond=0)


class Alerting:
    """The gateway, its delivery loop running, and the receiver its alert mail is routed to."""

    def __init__(self, gateway, receiver, authorities: PKI):
        self.gateway, self.receiver, self.authorities = gateway, receiver, authorities

    def stage(self, description: str, change) -> None:
        self.gateway.stage(description, change)

    def commit(self) -> None:
        """Commit; the gateway takes the new running configuration (what ``Gateway._follow`` does)."""
        assert self.gateway.commit() == []
        self.gateway.gateway.config = workflow.running_config()

    def recipient(self, address: str = OPS, classes=("system",), severities=("all",)) -> None:
        self.stage(f"alert recipient {address}", lambda: alerts.create(address, classes, severities))

    def certificate(
        self, name: str, common_name: str, not_after: datetime.datetime, **options
    ) -> x509.Certificate:
        """Paste a certificate for ``common_name`` from the test intermediate, ending at ``not_after``."""
        credential = self.authorities.intermediate.issue(
            common_name, not_before=not_after - 365 * DAY, not_after=not_after
        )
        chain = bundle(credential.cert, self.authorities.intermediate.cert)
        self.stage(
            f"certificate {name}",
            lambda: certificate_store.paste(CLUSTER, name, chain, credential.key_pem, **options),
        )
        return pki.load_certificate(credential.cert_pem)

    def custom_ca(self, common_name: str, not_after: datetime.datetime) -> x509.Certificate:
        """Add a CA certificate ending at ``not_after`` to the Custom List, and enable the list."""
        credential = self.authorities.root.issue(
            common_name, ca=True, not_before=not_after - 365 * DAY, not_after=not_after
        )

        def change():
            certificate_store.add_custom_authorities(credential.cert.read_bytes())
            certificate_store.set_authority_lists(True, True)

        self.stage(f"custom CA {common_name}", change)
        return pki.load_certificate(credential.cert_pem)

    def check(self, now: datetime.datetime | None = None, checker: ExpiryAlerts | None = None) -> list[str]:
        """One expiry check by the gateway (or by ``checker``) on the gateway's loop; the keys sent."""
        return self.gateway.runner.run((checker or self.gateway.gateway.expiry_alerts).check(now))

    def mail(self, count: int) -> list[email.message.EmailMessage]:
        """The alert mail the receiver got, once ``count`` messages came."""
        return [
            email.message_from_bytes(received.data, policy=email.policy.default)
            for received in self.receiver.wait(count)
        ]

    def spool_empty(self) -> None:
        wait_until(lambda: self.gateway.gateway.shared.spool.mids() == [])


@pytest.fixture(name="alerting")
def alerting_fixture(gateway, receivers, authorities, settings, tmp_path):
    """Alert mail for alerts.test goes to a receiver on loopback; no recipient is committed yet."""
    settings.DATA_DIR = tmp_path  # the alert record of this test alone
    gateway.gateway.shared.spool = Spool(tmp_path / "spool")
    receiver = receivers(PLAIN)
    harness = Alerting(gateway, receiver, authorities)
    harness.stage(
        "route alert mail", lambda: routes.create("alerts.test", [{"host": receiver.hop, "priority": None}])
    )
    harness.commit()
    with running(gateway.runner, gateway.gateway.delivery):
        yield harness


def key(certificate, threshold: int | str) -> str:
    return f"certificate-expiry:{pki.fingerprint(certificate)}:{threshold}"


def body(mail: email.message.EmailMessage) -> str:
    """The text as the recipient reads it (lines as sent, without the CR of SMTP)."""
    return mail.get_content().replace("\r\n", "\n")


# --- by mail, once per threshold --------------------------------------------------------------------


def test_a_certificate_and_a_custom_ca_near_their_end_are_mailed_once(alerting):
    alerting.recipient()
    mail_certificate = alerting.certificate("Mail", "mail.example.com", ends_in(10.5))
    alerting.stage("Mail on IncomingMail", lambda: listener_store.set_certificate(CLUSTER_MODE, IN, "Mail"))
    authority = alerting.custom_ca("Partner Root CA", ends_in(50.5))
    alerting.commit()

    sent = alerting.check()

    assert sent == [key(mail_certificate, 14), key(authority, 60)]
    first, second = sorted(alerting.mail(2), key=lambda mail: "Custom List" in mail["Subject"])
    end = f"{mail_certificate.not_valid_after_utc:%Y-%m-%d}"
    assert first["Subject"] == (
        f"Warning <System> {HOST}: The certificate 'Mail' (CN=mail.example.com) will expire in 10 days ({end})"
    )
    assert first["To"] == OPS and first["Auto-Submitted"] == "auto-generated"
    text = body(first)
    assert f"The certificate 'Mail' (CN=mail.example.com) on {HOST} will expire in 10 days, on {end} " in text
    assert "Certificate:  Mail\n" in text
    assert "Common Name:  mail.example.com\n" in text
    assert "Issued by:    CN=Test Intermediate CA\n" in text
    assert (
        f"Expires:      {mail_certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC (10 days left)\n" in text
    )
    assert f"SHA-256:      {pki.fingerprint(mail_certificate)}\n" in text
    assert "Used by:      listener 'IncomingMail' (Certificate)\n" in text
    assert "Network > Certificates > Mail > Renew (console: certconfig renew Mail)" in text
    assert "have your certificate authority sign it, upload the signed certificate" in text

    ca_end = f"{authority.not_valid_after_utc:%Y-%m-%d}"
    assert second["Subject"] == (
        f"Info <System> {HOST}: The Custom List CA certificate 'Partner Root CA' will expire in 50 days ({ca_end})"
    )
    ca_text = body(second)
    assert ca_text.startswith(
        f"The CA certificate 'Partner Root CA' in the Custom List of {HOST} will expire in 50 days, on {ca_end} "
    )
    assert "Subject:      CN=Partner Root CA\n" in ca_text
    assert "Custom List:  enabled: it verifies TLS peers\n" in ca_text
    assert "replace this one in the Custom List: Network > Certificate Authorities > Custom List" in ca_text

    recorded = {alert.key: alert for alert in alert_mail.recent()}
    assert set(recorded) == set(sent)
    assert (recorded[sent[0]].alert_class, recorded[sent[0]].severity) == ("system", "warning")
    assert (recorded[sent[1]].alert_class, recorded[sent[1]].severity) == ("system", "information")
    assert recorded[sent[0]].recipients == [OPS]
    alerting.spool_empty()

    assert alerting.check() == []  # the next check: nothing new
    assert len(alert_mail.recent()) == 2
    assert alerting.gateway.gateway.shared.spool.mids() == []
    assert len(alerting.receiver.messages) == 2


def test_each_threshold_once_as_time_goes_on_then_the_expired_alert(alerting):
    alerting.recipient()
    certificate = alerting.certificate("Mail", "mail.example.com", ends_in(10.5))
    alerting.commit()
    now = datetime.datetime.now(datetime.UTC)

    assert alerting.check(now) == [key(certificate, 14)]
    assert alerting.check(now + 4 * DAY) == [key(certificate, 7)]  # 6 days left
    assert alerting.check(now + 5 * DAY) == []  # 5 days left: still the 7-day threshold
    assert alerting.check(now + 8 * DAY) == [key(certificate, 3)]  # 2 days left
    assert alerting.check(now + 10 * DAY) == [key(certificate, 1)]  # hours left
    assert alerting.check(now + 11 * DAY) == [key(certificate, "expired")]
    assert alerting.check(now + 30 * DAY) == []

    subjects = [mail["Subject"] for mail in alerting.mail(5)]
    end = f"{certificate.not_valid_after_utc:%Y-%m-%d}"
    assert sorted(subjects) == sorted(
        [
            f"Warning <System> {HOST}: The certificate 'Mail' (CN=mail.example.com) will expire in 10 days ({end})",
            f"Warning <System> {HOST}: The certificate 'Mail' (CN=mail.example.com) will expire in 6 days ({end})",
            f"Critical <System> {HOST}: The certificate 'Mail' (CN=mail.example.com) will expire in 2 days ({end})",
            f"Critical <System> {HOST}: The certificate 'Mail' (CN=mail.example.com) will expire in less than a day ({end})",
            f"Critical <System> {HOST}: The certificate 'Mail' (CN=mail.example.com) has expired ({end})",
        ]
    )
    assert [alert.severity for alert in reversed(alert_mail.recent())] == [
        "warning",
        "warning",
        "critical",
        "critical",
        "critical",
    ]


def test_a_certificate_first_seen_at_20_days_gets_the_30_day_alert_only(alerting):
    alerting.recipient()
    certificate = alerting.certificate("Mail", "mail.example.com", ends_in(20.5))
    alerting.commit()

    assert alerting.check() == [key(certificate, 30)]
    [mail] = alerting.mail(1)
    assert "will expire in 20 days" in mail["Subject"]
    assert [alert.key for alert in alert_mail.recent()] == [key(certificate, 30)]


def test_an_expired_certificate_gets_one_has_expired_alert(alerting):
    alerting.recipient()
    certificate = alerting.certificate("Old", "old.example.com", ends_in(-2), accept_dates=True)
    alerting.commit()

    assert alerting.check() == [key(certificate, "expired")]
    [mail] = alerting.mail(1)
    end = certificate.not_valid_after_utc
    assert (
        mail["Subject"]
        == f"Critical <System> {HOST}: The certificate 'Old' (CN=old.example.com) has expired ({end:%Y-%m-%d})"
    )
    text = body(mail)
    assert f"expired on {end:%Y-%m-%d %H:%M:%S} UTC." in text
    assert "(expired)\n" in text
    assert "Used by:      nothing in the committed configuration\n" in text
    assert "Whatever uses it now presents an expired certificate" in text
    assert alerting.check() == []


def test_a_restarted_gateway_remembers_what_it_alerted(alerting):
    alerting.recipient()
    certificate = alerting.certificate("Mail", "mail.example.com", ends_in(10.5))
    alerting.commit()
    assert alerting.check() == [key(certificate, 14)]

    def restarted():  # a new gateway process: only the record of sent alerts is left
        return ExpiryAlerts(
            alerting.gateway.gateway.delivery.notices, lambda: alerting.gateway.gateway.config
        )

    now = datetime.datetime.now(datetime.UTC)
    assert alerting.check(checker=restarted()) == []
    assert alerting.check(now + 4 * DAY, checker=restarted()) == [key(certificate, 7)]
    assert alerting.check(now + 4 * DAY, checker=restarted()) == []
    alerting.mail(2)
    assert len(alert_mail.recent()) == 2


def test_a_renewed_certificate_starts_afresh(alerting):
    alerting.recipient()
    old = alerting.certificate("Mail", "mail.example.com", ends_in(10.5))
    alerting.commit()
    assert alerting.check() == [key(old, 14)]

    alerting.stage("replace Mail", lambda: certificate_store.delete(CLUSTER_MODE, "Mail"))
    new = alerting.certificate("Mail", "mail.example.com", ends_in(25.5))
    alerting.commit()

    assert alerting.check() == [key(new, 30)]


# --- who hears of it ---------------------------------------------------------------------------------


def test_without_recipients_nothing_is_sent_and_a_later_recipient_gets_the_alert(alerting):
    certificate = alerting.certificate("Mail", "mail.example.com", ends_in(10.5))
    alerting.commit()

    assert alerting.check() == []
    assert alert_mail.recent() == []
    assert alerting.gateway.gateway.shared.spool.mids() == []

    alerting.recipient()
    alerting.commit()
    assert alerting.check() == [key(certificate, 14)]
    alerting.mail(1)


def test_a_recipient_gets_only_the_severities_it_subscribed_to(alerting):
    alerting.recipient(severities=("critical",))
    certificate = alerting.certificate("Mail", "mail.example.com", ends_in(10.5))
    alerting.commit()
    now = datetime.datetime.now(datetime.UTC)

    assert alerting.check(now) == []  # the 14-day alert is a Warning
    assert alerting.check(now + 8 * DAY) == [key(certificate, 3)]
    [mail] = alerting.mail(1)
    assert mail["Subject"].startswith(f"Critical <System> {HOST}: ")


def test_an_uncommitted_recipient_or_certificate_gets_no_alert(alerting):
    alerting.recipient()
    alerting.commit()
    alerting.certificate("Staged", "staged.example.com", ends_in(10.5))
    alerting.recipient("staged@alerts.test")

    assert alerting.check() == []  # only the committed Demo, with ten years to go
    assert alert_mail.recent() == []


# --- the Custom List and the message ---------------------------------------------------------------


def test_a_ca_of_a_disabled_custom_list_is_still_watched_and_the_text_says_so(alerting):
    alerting.recipient()
    authority = alerting.custom_ca("Partner Root CA", ends_in(5.5))
    alerting.stage("Custom List off", lambda: certificate_store.set_authority_lists(True, False))
    alerting.commit()

    assert alerting.check() == [key(authority, 7)]
    [mail] = alerting.mail(1)
    assert "Custom List:  disabled: nothing uses it now\n" in body(mail)


def test_self_signed_and_pending_certificates_get_their_own_advice(authorities):
    now = datetime.datetime.now(datetime.UTC)
    self_signed = expiry_alerts.Watched(
        certificate=pki.load_certificate(authorities.root.cert_pem),
        fingerprint="AA",
        names=("Lab",),
        self_signed=True,
    )
    _, _, text = expiry_alerts.message(self_signed, 7, now, HOST)
    assert (
        "Network > Certificates > Lab > Renew (console: certconfig renew Lab) makes a new self-signed" in text
    )

    pending = expiry_alerts.Watched(
        certificate=pki.load_certificate(authorities.intermediate.cert_pem),
        fingerprint="BB",
        names=("Mail",),
        signing_request=True,
    )
    _, _, text = expiry_alerts.message(pending, 7, now, HOST)
    assert "a signing request for 'Mail' is waiting for your certificate authority" in text
    assert "certconfig upload Mail --cert FILE" in text


def test_every_threshold_has_a_severity_and_keys_read_back():
    assert [expiry.severity_at(t) for t in (*expiry.THRESHOLDS, expiry.EXPIRED)] == [
        "information",
        "information",
        "warning",
        "warning",
        "warning",
        "critical",
        "critical",
        "critical",
    ]
    fingerprint = "AB:CD:EF"
    for threshold in (*expiry.THRESHOLDS, expiry.EXPIRED):
        assert expiry_alerts.parse_key(expiry_alerts.alert_key(fingerprint, threshold)) == (
            fingerprint,
            threshold,
        )
    assert expiry_alerts.parse_key("tls-required:example.com") is None


# --- in the gateway process ---------------------------------------------------------------------


@contextlib.contextmanager
def mail_log_file():
    """``Gateway.run`` opens the mail log file; put the logger back as it was afterwards."""
    logger = maillog.logger
    before, propagate = list(logger.handlers), logger.propagate
    try:
        yield
    finally:
        for handler in [h for h in logger.handlers if h not in before]:
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = propagate


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


def test_the_running_gateway_checks_at_start(gateway, receivers, authorities, settings, tmp_path):
    """``Gateway.run`` itself: its first check, as the process starts, mails the alert."""
    settings.DATA_DIR = tmp_path
    engine = gateway.gateway
    engine.shared.spool = Spool(tmp_path / "spool")
    receiver = receivers(PLAIN)
    harness = Alerting(gateway, receiver, authorities)
    harness.stage(
        "route alert mail", lambda: routes.create("alerts.test", [{"host": receiver.hop, "priority": None}])
    )
    harness.recipient()
    certificate = harness.certificate("Mail", "mail.example.com", ends_in(2.5))
    harness.commit()
    # The version the gateway follows, announced as a commit announces it, and already applied.
    number = workflow.running_number()
    workflow.version_file().parent.mkdir(parents=True, exist_ok=True)
    workflow.version_file().write_text(f"{number}\n")
    engine.version = number

    with mail_log_file():
        stop = gateway.runner.run(_new_event())
        future = asyncio.run_coroutine_threadsafe(engine.run(stop), gateway.runner.loop)
        try:
            [mail] = harness.mail(1)
        finally:
            gateway.runner.loop.call_soon_threadsafe(stop.set)
            future.result(10)

    assert mail["Subject"].startswith(
        f"Critical <System> {HOST}: The certificate 'Mail' (CN=mail.example.com)"
    )
    assert [alert.key for alert in alert_mail.recent()] == [key(certificate, 3)]

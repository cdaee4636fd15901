"""The records of a running appliance: mail sent to its listener shows up in Message Tracking and in the
TLS Connections report, written by ``rungateway``'s own recorder (``runappliance``, real processes)."""

from __future__ import annotations

import re
import smtplib
import ssl
import time

import pytest

from tests.appliance_process import PASSWORD, free_port
from tests.test_runappliance import Browser, running  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def test_mail_through_the_running_gateway_is_tracked_and_counted(running):  # noqa: F811 (the fixture)
    port = free_port()
    for change in (
        ("listenerconfig", "edit", "IncomingMail", "--port", str(port)),
        ("listenerconfig", "edit", "IncomingMail", "hostaccess", "default", "--tls", "preferred"),
        ("commit", "--comment", "listener on a free port, TLS preferred"),
    ):
        done = running.manage(*change)
        assert done.returncode == 0, done.stdout + done.stderr
    running.wait_for(rf"Gateway ready: IncomingMail 127\.0\.0\.1:{port}")

    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
        client.starttls(context=unverified)
        client.sendmail(
            "alice@partner.test",
            ["bob@example.com"],
            b"From: alice@partner.test\r\nSubject: Live tracking\r\n\r\nHello.\r\n",
        )
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as client:
        client.sendmail("carol@plain.test", ["bob@example.com"], b"Subject: In clear\r\n\r\nHi.\r\n")

    browser = Browser(running.port, unverified)
    browser.request("GET", "/login/")
    response, _ = browser.request("POST", "/login/", {"username": "admin", "password": PASSWORD})
    assert response.status == 302
    deadline = time.monotonic() + 10
    while True:  # the recorder writes once a second
        _, listed = browser.request("GET", "/monitor/message-tracking/?sender=partner.test")
        if "Live tracking" in listed or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert "Live tracking" in listed and re.search(r"TLSv1\.3 \S+", listed)

    response, report = browser.request("GET", "/monitor/tls-connections/?range=hour")
    assert response.status == 200
    incoming = report.split("Incoming TLS Messages Summary")[0]
    assert re.search(r"<tr><th>Preferred TLS: Successful</th><td>1</td>", incoming)
    assert re.search(r"<tr><th>Connections without TLS</th><td>1</td>", incoming)

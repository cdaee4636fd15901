"""runappliance for real: HTTPS on loopback with the committed certificate, commits that change what runs."""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from cryptography import x509

from tests.appliance_process import PASSWORD, Appliance, free_port
from tests.pki_factory import make_pki, self_signed

PROJECT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture
def running(tmp_path):
    appliance = Appliance(tmp_path / "data", free_port())
    try:
        appliance.wait_for(r"^Appliance ready: ")
        yield appliance
    finally:
        appliance.stop()


def refuses_connections(port: int, within: float) -> bool:
    """True once nothing listens on ``port`` (old workers finish their requests first)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        time.sleep(0.2)
    return False


def presented_certificate(port: int, address: str = "127.0.0.1") -> x509.Certificate:
    return x509.load_pem_x509_certificate(ssl.get_server_certificate((address, port)).encode())


def committed_certificate(appliance: Appliance, name: str) -> x509.Certificate:
    shown = appliance.manage("showconfig").stdout
    profile = re.search(
        rf"<certificate_name>{name}</certificate_name>\s*<certificate_pem>(.*?)</certificate_pem>",
        shown,
        re.S,
    )
    return x509.load_pem_x509_certificate(profile.group(1).encode())


def trusting(certificate: x509.Certificate) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=certificate.public_bytes(ssl_encoding()).decode())
    return context


def ssl_encoding():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


class Browser:
    """Just enough of a browser: one HTTPS connection, cookies, CSRF tokens."""

    def __init__(self, port: int, context: ssl.SSLContext, address: str = "127.0.0.1"):
        self.port, self.context, self.address = port, context, address
        self.cookies: dict[str, str] = {}
        self.connect()

    def connect(self):
        self.connection = http.client.HTTPSConnection(
            self.address, self.port, context=self.context, timeout=10
        )

    def request(self, method: str, path: str, fields: dict | None = None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if fields is not None:
            from urllib.parse import urlencode

            fields = {"csrfmiddlewaretoken": self.cookies.get("csrftoken", ""), **fields}
            body = urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"https://{self.address}:{self.port}/"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        content = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, value = header.split(";", 1)[0].split("=", 1)
            self.cookies[name] = value
        return response, content


def test_https_console_presents_demo_and_secure_headers(running):
    presented = presented_certificate(running.port)
    demo = committed_certificate(running, "Demo")
    assert presented == demo
    assert presented.subject.rfc4514_string() == "CN=esa.example.com,O=Mail Gateway Demo Certificate"

    # Verified against the Demo certificate and its name, like a browser told to trust it.
    context = trusting(demo)
    context.check_hostname = False  # the URL uses the address; the name is esa.example.com
    browser = Browser(running.port, context)
    response, _ = browser.request("GET", "/login/")
    assert response.status == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]

    response, _ = browser.request("POST", "/login/", {"username": "admin", "password": PASSWORD})
    assert response.status == 302
    response, page = browser.request("GET", "/")
    assert response.status == 200
    assert "System Overview" in page and "esa.example.com" in page


def test_what_the_terminal_shows_is_kept_in_console_log(running, tmp_path):
    browser = Browser(running.port, ssl._create_unverified_context())
    response, _ = browser.request("GET", "/login/")
    assert response.status == 200
    log = tmp_path / "data" / "logs" / "console.log"
    deadline = time.monotonic() + 10
    while '"GET /login/ HTTP/1.1" 200' not in (text := log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"no access line in console.log:\n{text}"
        time.sleep(0.1)
    assert "Appliance ready: https://127.0.0.1:" in text  # the supervisor's line
    assert "[INFO] Listening at: https://127.0.0.1:" in text  # gunicorn's own
    assert "Gateway ready: IncomingMail" in text  # the mail gateway's


def test_a_commit_changes_the_certificate_and_the_port_without_a_restart(running, tmp_path):
    demo = committed_certificate(running, "Demo")
    context = trusting(demo)
    context.check_hostname = False
    browser = Browser(running.port, context)
    browser.request("GET", "/login/")
    browser.request("POST", "/login/", {"username": "admin", "password": PASSWORD})

    # A new certificate and key made by openssl, loaded as the <certificates> section.
    credential = self_signed(tmp_path, "new.example.com")
    key, cert = credential.key, credential.cert
    new_port = free_port()
    document = tmp_path / "change.xml"
    document.write_text(
        "<config><certificates><certificate><certificate_name>Demo</certificate_name>"
        f"<certificate_pem>{cert.read_text()}</certificate_pem><private_key>{key.read_text()}</private_key>"
        "</certificate></certificates>"
        "<interfaces><interface><interface_name>Management</interface_name><ip>127.0.0.1</ip>"
        "<netmask>32</netmask><interface_hostname>esa.example.com</interface_hostname>"
        f"<httpsd_port>{new_port}</httpsd_port><certificate_name>Demo</certificate_name>"
        "</interface></interfaces></config>"
    )
    loaded = running.manage("loadconfig", str(document))
    assert loaded.returncode == 0, loaded.stderr
    # Staged only: the running console still presents the old certificate.
    assert presented_certificate(running.port) == demo

    before = len(running.lines)
    committed = running.manage("commit", "--comment", "new certificate and port")
    assert committed.returncode == 0, committed.stderr
    running.wait_for(rf"^Appliance ready: https://127\.0\.0\.1:{new_port}/ \(Management\)", after=before)

    presented = presented_certificate(new_port)
    assert presented.subject.rfc4514_string() == "CN=new.example.com"
    assert refuses_connections(running.port, within=30)

    # The administrator's session survives: same cookie, new port, new certificate.
    new_context = trusting(presented)
    new_context.check_hostname = False
    browser.port, browser.context = new_port, new_context
    browser.connect()
    response, page = browser.request("GET", "/")
    assert response.status == 200 and "System Overview" in page


def test_ctrl_c_stops_cleanly(tmp_path):
    appliance = Appliance(tmp_path / "data", free_port())
    appliance.wait_for(r"^Appliance ready: ")
    started = time.monotonic()
    assert appliance.stop() == 0
    assert time.monotonic() - started < 30
    assert refuses_connections(appliance.port, within=1)


def test_first_start_prints_a_generated_password_once(tmp_path):
    def first_line_of_a_run():
        appliance = Appliance(tmp_path / "data", free_port(), admin_password=None)
        line = appliance.wait_for(r"^(First start|Appliance ready)")
        assert appliance.stop() == 0
        return line

    assert re.fullmatch(
        r"First start: the password of user admin is \S{12,} \(shown once\)", first_line_of_a_run()
    )
    assert first_line_of_a_run().startswith("Appliance ready: ")


def test_served_settings_pass_the_deployment_checks(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env={**os.environ, "APPLIANCE_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_port_in_use_is_reported_on_stderr_and_nothing_claims_to_be_ready(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        appliance = Appliance(tmp_path / "data", port)
        assert appliance.process.wait(timeout=60) == 1
    output = "\n".join(appliance.lines)
    # The error names what holds the port: this test's own process.
    assert (
        f"Error: the console cannot listen on 127.0.0.1 port {port} (Address already in use; PID {os.getpid()}: "
        in output
    )
    assert "Appliance ready" not in output


def service_processes(data_dir: Path) -> list[psutil.Process]:
    """The processes whose environment names ``data_dir``: runappliance, gunicorn and the gateway's."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("APPLIANCE_DATA_DIR") == str(data_dir):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_a_killed_appliance_takes_its_services_along_and_starts_again_at_once(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    first = Appliance(data_dir, port)
    first.wait_for(r"^Gateway ready: ")
    first.wait_for(r"^Appliance ready: ")
    services = [p for p in service_processes(data_dir) if p.pid != first.process.pid]
    assert len(services) >= 3  # gunicorn's master and workers, the gateway's processes
    first.process.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    first.process.wait()
    _, alive = psutil.wait_procs(services, timeout=15)
    assert alive == [], f"left running after kill -9: {[p.cmdline() for p in alive]}"

    started = time.monotonic()
    second = Appliance(data_dir, port)
    try:
        second.wait_for(r"^Appliance ready: ", timeout=30)
        second.wait_for(r"^Gateway ready: IncomingMail ", timeout=30)
        assert time.monotonic() - started < 30
        assert "Error" not in "\n".join(second.lines)

        # A second runappliance on the same data directory is refused, naming the one that runs.
        third = Appliance(data_dir, free_port())
        assert third.process.wait(timeout=60) == 1
        assert (
            f"Error: runappliance already runs on this data directory (PID {second.process.pid})"
            in "\n".join(third.lines)
        )
    finally:
        assert second.stop() == 0


def test_the_guides_path_ends_with_the_console_serving_the_ca_signed_chain(running, tmp_path):
    """Create + CSR → a CA signs it → upload with the intermediate → commit → HTTPS serves the chain → export."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    pki = make_pki(tmp_path / "pki")

    def ok(*args):
        result = running.manage(*args)
        assert result.returncode == 0, result.stderr
        return result

    ok(
        "certconfig",
        "new",
        "Mail",
        "--cn",
        "mail.example.org",
        "--san",
        "mail.example.org",
        "--key",
        "rsa3072",
    )
    ok("commit", "--comment", "key and CSR before they go to the CA")
    csr = ok("certconfig", "csr", "Mail").stdout
    signed = pki.intermediate.sign(csr, "mail-signed")
    ok("certconfig", "upload", "Mail", "--cert", str(signed), "--intermediates", str(pki.intermediate.cert))

    document = tmp_path / "interface.xml"
    document.write_text(
        "<config><interfaces><interface><interface_name>Management</interface_name><ip>127.0.0.1</ip>"
        "<netmask>32</netmask><interface_hostname>mail.example.org</interface_hostname>"
        f"<httpsd_port>{running.port}</httpsd_port><certificate_name>Mail</certificate_name>"
        "</interface></interfaces></config>"
    )
    ok("loadconfig", str(document))
    before = len(running.lines)
    ok("commit", "--comment", "CA-signed certificate on the console")
    running.wait_for(r"^Appliance ready: .*configuration version 3\]", after=before)

    # A real TLS client that trusts only the test root verifies the chain and the name.
    client = ssl.create_default_context(cafile=str(pki.root.cert))
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
        with client.wrap_socket(raw, server_hostname="mail.example.org") as tls:
            served = tls._sslobj.get_unverified_chain()  # public API from Python 3.13
            assert [
                x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER)).subject.rfc4514_string()
                for c in served
            ] == ["CN=mail.example.org", "CN=Test Intermediate CA"]

    exported = tmp_path / "mail.p12"
    (tmp_path / "pass").write_text("export-pass-1\n")
    ok("certconfig", "export", "Mail", "--pkcs12", str(exported), "--passphrase-file", str(tmp_path / "pass"))
    bundle = pkcs12.load_pkcs12(exported.read_bytes(), b"export-pass-1")
    assert bundle.cert.certificate.subject.rfc4514_string() == "CN=mail.example.org"
    assert [c.certificate.subject.rfc4514_string() for c in bundle.additional_certs] == [
        "CN=Test Intermediate CA"
    ]
    listing = subprocess.run(
        ["openssl", "pkcs12", "-in", exported, "-passin", "pass:export-pass-1", "-nokeys"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listing.count("BEGIN CERTIFICATE") == 2


def ok(appliance: Appliance, *args) -> subprocess.CompletedProcess:
    result = appliance.manage(*args)
    assert result.returncode == 0, result.stderr
    return result


def test_each_interface_serves_its_own_certificate_and_http_redirects(running):
    https_port, http_port = free_port(), free_port()
    ok(running, "certconfig", "new", "Second", "--cn", "second.example.org", "--key", "ec256")
    ok(running, "interfaceconfig", "new", "Second", "--ip", "127.0.0.2", "--netmask", "32",
       "--hostname", "second.example.org", "--https", str(https_port), "--http", str(http_port),
       "--certificate", "Second")  # fmt: skip
    before = len(running.lines)
    ok(running, "commit", "--comment", "second interface")
    running.wait_for(r"^Appliance ready: .*configuration version 2\]", after=before)

    assert pki_common_name(presented_certificate(running.port)) == "esa.example.com"
    assert pki_common_name(presented_certificate(https_port, "127.0.0.2")) == "second.example.org"

    connection = http.client.HTTPConnection("127.0.0.2", http_port, timeout=5)
    connection.request("GET", "/login/?next=/", headers={"Host": f"127.0.0.2:{http_port}"})
    response = connection.getresponse()
    assert response.status == 301
    assert response.headers["Location"] == f"https://127.0.0.2:{https_port}/login/?next=/"


def pki_common_name(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value


def expire_pending_confirmation(appliance: Appliance) -> None:
    ok(appliance, "shell", "-c",
       "from appliance.models import PendingConfirmation; from django.utils import timezone; "
       "import datetime; PendingConfirmation.objects.update(deadline=timezone.now() - datetime.timedelta(seconds=1))")  # fmt: skip


def test_an_unconfirmed_commit_rolls_back_by_itself_also_across_a_restart(tmp_path):
    appliance = Appliance(tmp_path / "data", free_port())
    try:
        appliance.wait_for(r"^Appliance ready: ")
        ok(appliance, "certconfig", "new", "Trial", "--cn", "esa.example.com", "--key", "ec256")
        ok(appliance, "interfaceconfig", "edit", "Management", "--certificate", "Trial")
        before = len(appliance.lines)
        ok(appliance, "commit", "--confirm-within", "5")
        appliance.wait_for(r"^Appliance ready: .*configuration version 2\]", after=before)
        assert (
            presented_certificate(appliance.port).subject == committed_certificate(appliance, "Trial").subject
        )
        assert presented_certificate(appliance.port) == committed_certificate(appliance, "Trial")

        before = len(appliance.lines)
        expire_pending_confirmation(appliance)
        appliance.wait_for(
            r"^Warning: version 2 was not confirmed in time: version 3 restores version 1", after=before
        )
        appliance.wait_for(r"^Appliance ready: .*configuration version 3\]", after=before)
        assert presented_certificate(appliance.port) == committed_certificate(appliance, "Demo")

        # Again, but the appliance is down when the time runs out (the rollback took Trial away too).
        ok(appliance, "certconfig", "new", "Trial", "--cn", "esa.example.com", "--key", "ec256")
        ok(appliance, "interfaceconfig", "edit", "Management", "--certificate", "Trial")
        before = len(appliance.lines)
        ok(appliance, "commit", "--confirm-within", "5")
        appliance.wait_for(r"^Appliance ready: .*configuration version 4\]", after=before)
        assert appliance.stop() == 0
        expire_pending_confirmation(appliance)
    finally:
        appliance.stop()
    restarted = Appliance(tmp_path / "data", appliance.port)
    try:
        restarted.wait_for(r"^Warning: version 4 was not confirmed in time: version 5 restores version 3")
        restarted.wait_for(r"^Appliance ready: .*\[configuration version 5\]")
        assert presented_certificate(restarted.port) == committed_certificate(restarted, "Demo")
    finally:
        restarted.stop()


def test_the_committed_ssl_configuration_is_what_the_console_serves(running):
    def handshake(version: ssl.TLSVersion) -> str:
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        client.minimum_version = client.maximum_version = version
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw:
            with client.wrap_socket(raw) as tls:
                return tls.version()

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    ok(running, "sslconfig", "set", "gui", "--min", "TLSv1.3")
    before = len(running.lines)
    ok(running, "commit", "--comment", "TLS 1.3 only on the console")
    running.wait_for(r"^Appliance ready: .*configuration version 2\]", after=before)
    assert handshake(ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        handshake(ssl.TLSVersion.TLSv1_2)


def test_a_body_over_the_limit_gets_a_readable_413_at_once(running):
    context = ssl._create_unverified_context()  # what is served is not the point here
    browser = Browser(running.port, context)
    browser.request("GET", "/login/")
    browser.request("POST", "/login/", {"username": "admin", "password": PASSWORD})
    paste = "x" * (50 * 1024 * 1024)  # a 50 MB paste; the limit is 32 MiB
    started = time.monotonic()
    response, page = browser.request("POST", "/admin/config/load/", {"source": "paste", "pasted": paste})
    elapsed = time.monotonic() - started
    assert response.status == 413
    assert "is larger than the console accepts: a configuration file may be up to 32 MiB." in page
    assert elapsed < 5, elapsed
    print(f"413 answered in {elapsed * 1000:.0f} ms")
    browser.connect()
    assert browser.request("GET", "/")[0].status == 200

"""Forms an administrator enjoys: each field checked when it is left (the whole form posted with
``_validate``, only that field's block answered, nothing staged or audited), dependent fields redrawn
(Key Type → Key Size, TLS → Verify Client Certificate and the address list), the guide's TLS
definitions beside the choices, and a label for every control."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from appliance import workflow
from appliance.config.levels import CLUSTER
from appliance.models import AuditEvent
from certificates import pki
from certificates.models import Certificate
from destinations.forms import TLS_MEANINGS as DELIVERY_TLS
from destinations.models import DEFAULT_DESTINATION, TlsSupport
from listeners import hat
from listeners.forms import PORT_RANGE
from listeners.hat_forms import NEEDS_PREFERRED, NEEDS_TLS, VERIFY_HELP
from listeners.hat_forms import TLS_MEANINGS as INBOUND_TLS
from listeners.models import InboundTls

LISTENER = "IncomingMail"  # made at first start; its Default Policy Parameters have TLS Off
ADD_CERTIFICATE = reverse("certificates:add")
DEFAULT_PARAMETERS = reverse("listeners:default_parameters", args=[LISTENER])
ADD_POLICY = reverse("listeners:policy_add", args=[LISTENER])
ADD_DESTINATION = reverse("destinations:destination_add")
SELF_SIGNED = {
    "option": "self_signed",
    "name": "Mail",
    "common_name": "mail.example.org",
    "country": "DE",
    "expiration": "365",
    "key_type": "ecdsa",
    "key_size": "P-256",
}
INTERFACE = {
    "intname": "Data1",
    "ip": "127.0.0.2",
    "netmask": "32",
    "hostname": "data.example.org",
    "httpsd_port": "8443",
    "certificate": "Demo",
}
LIMITS = {
    "max_message_size": "10485760",
    "max_rcpts_per_msg": "50",
    "max_msgs_per_session": "10",
    "max_concurrency_per_ip": "20",
    "max_connections_per_minute_per_ip": "120",
}


def block(page: str, element_id: str) -> str:
    """The element with this id, from its start tag to its end tag (elements of its kind nest)."""
    start = page.rindex("<", 0, page.index(f'id="{element_id}"'))
    tag = re.match(r"<(\w+)", page[start:]).group(1)
    depth = 0
    for match in re.finditer(rf"<(/?){tag}\b", page[start:]):
        depth += -1 if match.group(1) else 1
        if depth == 0:
            return page[start : page.index(">", start + match.end()) + 1]
    raise AssertionError(f"{element_id} is not closed")


def options(page: str, select_id: str) -> list[str]:
    return re.findall(r'<option value="([^"]*)"', block(page, select_id))


def text(response) -> str:
    return html.unescape(response.content.decode())


def check(client, url: str, data: dict, field: str):
    """What the browser sends when ``field`` changes: the whole form, and which field to check."""
    return client.post(url, {**data, "_validate": field}, headers={"HX-Request": "true"})


@pytest.fixture
def nothing_staged(admin):
    """After the test: no uncommitted change and nothing new in the audit log."""
    events = AuditEvent.objects.count()
    yield
    assert not workflow.has_uncommitted_changes()
    assert AuditEvent.objects.count() == events


# --- inline checks ---------------------------------------------------------------------------


def test_a_check_answers_with_the_field_alone_and_stages_nothing(login, admin, nothing_staged):
    client = login(admin)
    response = check(client, ADD_CERTIFICATE, {**SELF_SIGNED, "country": "Deutschland"}, "country")
    assert response.status_code == 200
    page = text(response).strip()
    assert page.startswith('<div class="field has-error" id="id_country_block"')
    assert block(page, "id_country_block") == page  # that block, nothing more
    assert "<form" not in page and "csrfmiddlewaretoken" not in page
    assert 'aria-invalid="true" aria-describedby="id_country_error"' in page
    error = block(page, "id_country_error")
    assert 'role="alert"' in error
    assert "Ensure this value has at most 2 characters (it has 11)." in error
    # A form that would be accepted is checked, never submitted.
    response = check(client, ADD_CERTIFICATE, SELF_SIGNED, "name")
    assert response.status_code == 200
    assert not Certificate.objects.at(CLUSTER).filter(name="Mail").exists()


def test_a_valid_field_comes_back_without_an_error(login, admin, nothing_staged):
    page = text(check(login(admin), ADD_CERTIFICATE, SELF_SIGNED, "common_name"))
    assert page.strip().startswith('<div class="field" id="id_common_name_block"')
    assert "has-error" not in page and 'class="error"' not in page and "aria-invalid" not in page
    assert 'value="mail.example.org"' in page


@pytest.mark.parametrize(
    "url,data,field,message",
    [
        (ADD_CERTIFICATE, {**SELF_SIGNED, "name": "bad/name"}, "name", "'bad/name' is not a valid name"),
        (
            ADD_CERTIFICATE,
            {"option": "paste", "name": "Pasted", "certificate": "hello"},
            "certificate",
            "This is not a PEM certificate: paste the text from -----BEGIN CERTIFICATE-----",
        ),
        (
            ADD_CERTIFICATE,
            {"option": "paste", "name": "Pasted", "private_key": "hello"},
            "private_key",
            "This is not a PEM private key",
        ),
        (ADD_CERTIFICATE, {"option": "import", "name": "a/b"}, "name", "'a/b' is not a valid name"),
        (
            reverse("interface_add"),
            {**INTERFACE, "netmask": "40"},
            "netmask",
            "The netmask must be at most 32 for 127.0.0.2.",
        ),
        (
            reverse("interface_add"),
            {**INTERFACE, "httpd_port": "8443"},
            "httpd_port",
            "HTTP and HTTPS cannot share a port.",
        ),
        (reverse("listeners:add"), {"name": "Relay", "port": "0"}, "port", PORT_RANGE),
        (ADD_POLICY, {"name": "a/b", "tls": "default"}, "name", "'a/b' is not a valid name"),
        (DEFAULT_PARAMETERS, {**LIMITS, "max_rcpts_per_msg": "x"}, "max_rcpts_per_msg", "whole number"),
        (ADD_DESTINATION, {"new_name": "exa mple.com"}, "new_name", "'exa mple.com' is not a destination"),
    ],
)
def test_each_form_checks_its_fields(login, admin, nothing_staged, url, data, field, message):
    page = text(check(login(admin), url, data, field))
    assert page.strip().startswith(f'<div class="field has-error" id="id_{field}_block"')
    assert message in block(page, f"id_{field}_error")


def test_a_check_of_a_field_the_form_does_not_have_is_refused(login, admin, nothing_staged):
    response = check(login(admin), ADD_CERTIFICATE, SELF_SIGNED, "owner")
    assert response.status_code == 400
    assert not Certificate.objects.at(CLUSTER).filter(name="Mail").exists()


def test_fields_are_checked_when_they_change_except_files_and_passwords(login, admin):
    client = login(admin)
    page = text(client.get(ADD_CERTIFICATE))
    name = block(page, "id_name_block")
    for attribute in (
        f'hx-post="{ADD_CERTIFICATE}"',
        'hx-trigger="change"',
        """hx-vals='{"_validate": "name"}'""",
        'hx-target="this" hx-swap="outerHTML settle:0ms"',  # the new block is live at once
        'hx-indicator="unset"',  # the key generation's progress line stays for the submit
    ):
        assert attribute in name, attribute
    page = text(client.get(ADD_CERTIFICATE, {"option": "import"}))
    assert "hx-post" in block(page, "id_name_block")
    assert "hx-post" not in block(page, "id_cert_file_block")
    assert "hx-post" not in block(page, "id_cert_pass_block")
    page = text(client.get(ADD_CERTIFICATE, {"option": "paste"}))
    assert "hx-post" not in block(page, "id_key_passphrase_block")
    assert "_validate" not in text(client.get(reverse("ssl_configuration")))  # a form that did not opt in


def test_a_refused_submit_names_the_fields_in_an_alert(login, admin, nothing_staged):
    response = login(admin).post(reverse("listeners:add"), {"name": "Relay", "port": "0"})
    assert response.status_code == 400
    page = text(response)
    banner = page[page.index('<div class="banner banner-error" role="alert">') :]
    banner = banner[: banner.index("</div>")]
    assert "Correct the fields marked below:" in banner
    assert '<a href="#id_port">Port</a>' in banner and '<a href="#id_interface_name">Interface</a>' in banner


# --- Key Type and Key Size ---------------------------------------------------------------------


def test_the_key_sizes_are_those_of_the_key_type(login, admin):
    page = text(login(admin).get(ADD_CERTIFICATE))
    assert '<label for="id_key_type">Key Type</label>' in page
    assert '<label for="id_key_size">Key Size</label>' in page
    assert options(page, "id_key_type") == ["rsa", "ecdsa"]
    assert options(page, "id_key_size") == ["2048", "3072", "4096"]
    assert '<option value="2048" selected>' in page


@pytest.mark.parametrize("key_type,sizes", [("ecdsa", ["P-256", "P-384"]), ("rsa", ["2048", "3072", "4096"])])
def test_changing_the_key_type_redraws_the_key_sizes(login, admin, nothing_staged, key_type, sizes):
    response = check(login(admin), ADD_CERTIFICATE, {**SELF_SIGNED, "key_type": key_type}, "key_type")
    page = text(response)
    assert page.strip().startswith('<div class="field" id="id_key_type_block"')
    size = block(page, "id_key_size_block")
    assert 'hx-swap-oob="true"' in size
    assert options(size, "id_key_size") == sizes
    assert "has-error" not in page  # P-256 does not fit RSA, but the sizes are new: no error yet


def test_a_key_size_drawn_for_the_key_type_chosen_is_left_alone(login, admin, nothing_staged):
    """Choosing the type the sizes are drawn for again redraws nothing: a size being chosen stays."""
    data = {**SELF_SIGNED, "key_type": "rsa", "key_size": "4096", "_drawn_for_key_size": "rsa"}
    page = text(check(login(admin), ADD_CERTIFICATE, data, "key_type"))
    assert 'id="id_key_size_block"' not in page
    assert '<input type="hidden" name="_drawn_for_key_size" value="rsa">' in text(
        login(admin).get(ADD_CERTIFICATE)
    )


@pytest.mark.parametrize(
    "key_type,key_size,message",
    [
        ("ecdsa", "4096", "An ECDSA key is P-256 or P-384, not 4096."),
        ("rsa", "P-256", "An RSA key is 2048, 3072 or 4096 bits, not P-256."),
    ],
)
def test_the_key_size_must_fit_the_key_type(login, admin, nothing_staged, key_type, key_size, message):
    client = login(admin)
    data = {**SELF_SIGNED, "key_type": key_type, "key_size": key_size}
    response = client.post(ADD_CERTIFICATE, data)
    assert response.status_code == 400
    assert message in block(text(response), "id_key_size_error")
    assert not Certificate.objects.at(CLUSTER).filter(name="Mail").exists()
    assert message in block(text(check(client, ADD_CERTIFICATE, data, "key_size")), "id_key_size_error")


def test_the_key_type_and_size_make_the_key(login, admin):
    response = login(admin).post(ADD_CERTIFICATE, {**SELF_SIGNED, "key_size": "P-384"})
    assert response.status_code == 302
    certificate = Certificate.objects.at(CLUSTER).get(name="Mail").certificate
    assert pki.key_description(certificate.public_key()) == "ECDSA secp384r1"


# --- TLS and what depends on it ----------------------------------------------------------------


def disabled(page: str, control_id: str) -> bool:
    tag = re.search(rf'<(?:input|select)[^>]*id="{control_id}"[^>]*>', page).group(0)
    return " disabled" in tag


def test_tls_off_disables_the_verify_options(login, admin):
    page = text(login(admin).get(DEFAULT_PARAMETERS))
    assert '<input type="radio" name="tls" value="off" id="id_tls_0" required checked>' in page
    assert disabled(page, "id_tls_verify_client") and disabled(page, "id_tls_mandatory_address_list")
    assert NEEDS_TLS in block(page, "id_tls_verify_client_helptext")
    assert NEEDS_PREFERRED in block(page, "id_tls_mandatory_address_list_helptext")


@pytest.mark.parametrize(
    "tls,verify_disabled,address_list_disabled",
    [("preferred", False, False), ("required", False, True), ("off", True, True)],
)
def test_choosing_tls_redraws_the_verify_options(
    login, admin, nothing_staged, tls, verify_disabled, address_list_disabled
):
    page = text(check(login(admin), DEFAULT_PARAMETERS, {**LIMITS, "tls": tls}, "tls"))
    assert page.strip().startswith('<div class="field" id="id_tls_block"')
    for control, expected in (
        ("tls_verify_client", verify_disabled),
        ("tls_mandatory_address_list", address_list_disabled),
    ):
        redrawn = block(page, f"id_{control}_block")
        assert 'hx-swap-oob="true"' in redrawn
        assert disabled(redrawn, f"id_{control}") == expected, control


def test_use_default_takes_the_verify_options_from_the_default_parameters(login, admin):
    page = text(login(admin).get(ADD_POLICY))
    why = "With TLS Use Default, this comes from the Default Policy Parameters (TLS Off)."
    for control in ("tls_verify_client", "tls_mandatory_address_list"):
        assert disabled(page, f"id_{control}") and why in block(page, f"id_{control}_helptext")


def test_what_the_browser_posts_with_the_options_disabled_is_accepted(login, admin):
    client = login(admin)
    response = client.post(DEFAULT_PARAMETERS, {**LIMITS, "tls": "preferred", "tls_verify_client": "on"})
    assert response.status_code == 302
    response = client.post(DEFAULT_PARAMETERS, {**LIMITS, "tls": "off"})  # verify disabled: not posted
    assert response.status_code == 302
    assert hat.listener(CLUSTER, LISTENER).default_tls_verify_client is False


# --- help beside the TLS options -----------------------------------------------------------------


def test_each_inbound_tls_choice_has_the_guides_definition_beside_it(login, admin):
    page = text(login(admin).get(ADD_POLICY))
    for number, value in enumerate(InboundTls.values):
        label = re.search(rf'<label for="id_tls_{number}">(.*?)</label>', page, re.S).group(1)
        meaning = INBOUND_TLS.get(value, "Takes the listener's Default Policy Parameters, now Off")
        assert meaning in label, value
    assert "TLS is not allowed for incoming connections" in INBOUND_TLS[InboundTls.OFF]
    assert "TLS is allowed for incoming connections to the listener from MTAs" in page
    assert "until the STARTTLS command is received" in page
    verify = block(page, "id_tls_verify_client_block")
    assert VERIFY_HELP in verify and 'aria-describedby="id_tls_verify_client_helptext"' in verify


def test_the_chosen_tls_support_is_explained_beside_it(login, admin, nothing_staged):
    client = login(admin)
    page = text(client.get(ADD_DESTINATION))
    chosen = block(page, "id_table_tls_helptext")
    assert "Default (Preferred):" in chosen and DELIVERY_TLS[TlsSupport.PREFERRED] in chosen
    page = text(check(client, ADD_DESTINATION, {"table_tls": "required_verify"}, "table_tls"))
    chosen = block(page, "id_table_tls_helptext")
    assert "Required - Verify:" in chosen and DELIVERY_TLS[TlsSupport.REQUIRED_VERIFY] in chosen
    assert DELIVERY_TLS[TlsSupport.PREFERRED] not in chosen


def test_the_required_tls_alert_is_explained(login, admin):
    page = text(login(admin).get(reverse("destinations:destination_controls_settings")))
    alert = block(page, "id_send_tls_req_alert_block")
    assert '<label class="check" for="id_send_tls_req_alert">' in alert
    assert 'aria-describedby="id_send_tls_req_alert_helptext"' in alert
    assert "Required or Required - Verify" in alert and "Warning alerts of the System type" in alert


# --- labels ----------------------------------------------------------------------------------


class Controls(HTMLParser):
    """The form controls of a page without a label (``<label for>``, or ``aria-label`` where a number
    stands in a radio button's line), and radio buttons outside a fieldset."""

    def __init__(self):
        super().__init__()
        self.controls, self.labelled, self.loose_radios = [], set(), []
        self.fieldsets, self.legends = 0, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "fieldset":
            self.fieldsets += 1
        elif tag == "legend":
            self.legends += 1
        elif tag == "label" and attrs.get("for"):
            self.labelled.add(attrs["for"])
        elif tag in ("input", "select", "textarea"):
            if attrs.get("type") in ("hidden", "submit", "button"):
                return
            if not attrs.get("aria-label"):
                self.controls.append(attrs.get("id") or attrs.get("name"))
            if attrs.get("type") == "radio" and not self.fieldsets:
                self.loose_radios.append(attrs["id"])

    def handle_endtag(self, tag):
        if tag == "fieldset":
            self.fieldsets -= 1


@pytest.mark.parametrize(
    "url",
    [
        ADD_CERTIFICATE,
        f"{ADD_CERTIFICATE}?option=import",
        f"{ADD_CERTIFICATE}?option=paste",
        reverse("interface_add"),
        reverse("listeners:add"),
        ADD_POLICY,
        DEFAULT_PARAMETERS,
        ADD_DESTINATION,
        reverse("destinations:destination_entry", args=[DEFAULT_DESTINATION]),
        reverse("destinations:destination_controls_settings"),
    ],
)
def test_every_control_has_a_label_and_radio_groups_a_legend(login, admin, url):
    page = login(admin).get(url).content.decode()
    parser = Controls()
    parser.feed(page[page.index("<main") :])
    assert parser.controls
    assert [control for control in parser.controls if control not in parser.labelled] == []
    assert parser.loose_radios == []
    assert page.count("<fieldset") == page.count("<legend>")

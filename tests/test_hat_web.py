"""Mail Policies > Mail Flow Policies and HAT Overview: the pages, Find Senders, Import/Export HAT,
the Read-Only preview, and query counts with 10,000 senders in one group."""

from __future__ import annotations

import html

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from appliance import workflow
from appliance.config.levels import CLUSTER
from appliance.config.sections import registry
from appliance.navigation import menus_for
from listeners import address_lists, hat
from listeners.models import Listener, MailFlowPolicy, SenderEntry, SenderGroup
from listeners.senders import parse_sender
from tests.listener_fixtures import stage_listener, unchanged_fixture  # noqa: F401 (fixture)

LISTENER = "IncomingMail"  # made at first start: public, with the predefined policies and HAT
POLICIES = reverse("listeners:policies")
HAT = reverse("listeners:hat")
NOTHING_CHANGED = "Nothing was changed."
SUBMITTED = "Your changes have been submitted. Commit them to make them take effect."
PREVIEWED = "Read-Only Operator: this is what your submit would change. Nothing was stored."
HTMX = {"HX-Request": "true"}


def url(name: str, *args: str) -> str:
    return reverse(f"listeners:{name}", args=[LISTENER, *args])


def text(response) -> str:
    return html.unescape(response.content.decode())


def stage(user, apply) -> None:
    workflow.submit(user, "test setup", apply)


def hat_rows() -> list[tuple[str, str, str, list[str]]]:
    """The listener's HAT in order: (group, policy, comment, senders)."""
    return [
        (group.name, group.policy_name, group.comment, [e.host for e in group.entries.order_by("position")])
        for group in SenderGroup.objects.filter(listener__name=LISTENER).order_by("position")
    ]


def group_names() -> list[str]:
    return [row[0] for row in hat_rows()]


def senders_of(group: str) -> list[str]:
    return next(row[3] for row in hat_rows() if row[0] == group)


def policy(name: str) -> MailFlowPolicy:
    return MailFlowPolicy.objects.get(listener__name=LISTENER, name=name)


def policy_form(**values) -> dict:
    return {
        "name": "PARTNER",
        "connection_behavior": "accept",
        "tls": "default",
        "tls_mandatory_address_list": "",
        **values,
    }


def default_form(**values) -> dict:
    """The Default Policy Parameters form as the page posts it: the shipped limits unless given."""
    return {
        "max_message_size": "10485760",
        "max_rcpts_per_msg": "50",
        "max_msgs_per_session": "10",
        "max_concurrency_per_ip": "20",
        "max_connections_per_minute_per_ip": "120",
        **values,
    }


def group_form(**values) -> dict:
    return {"name": "PARTNERS", "order": "", "comment": "", "policy": "TRUSTED", **values}


def bulk_senders(group_name: str, count: int) -> None:
    """``count`` senders straight into the candidate rows of one group (test data, not a change)."""
    group = SenderGroup.objects.get(listener__name=LISTENER, name=group_name)
    rows = []
    for number in range(count):
        sender = parse_sender(f"10.{number // 65536 + 100}.{number // 256 % 256}.{number % 256}")
        rows.append(
            SenderEntry(
                group=group,
                position=number,
                host=sender.host,
                range_start=sender.range_start,
                range_end=sender.range_end,
            )
        )
    SenderEntry.objects.bulk_create(rows, batch_size=2000)


# --- every page ----------------------------------------------------------------------------


def test_every_page_renders(login, admin):
    client = login(admin)
    pages = {
        POLICIES: ["Listener:", "Add Policy...", "Default Policy Parameters", "ACCEPTED", "THROTTLED"],
        f"{POLICIES}?listener={LISTENER}": ["Edit Default Policy Parameters..."],
        url("policy_add"): ["Add Mail Flow Policy", "Connection Behavior", "RFC 3207"],
        url("policy_edit", "ACCEPTED"): ["Edit Mail Flow Policy: ACCEPTED", "Verify Client Certificate"],
        url("default_parameters"): ["Default Policy Parameters (Listener IncomingMail)", "Preferred"],
        HAT: ["Add Sender Group...", "Import HAT...", "Export HAT...", "Find Senders", "UNKNOWNLIST"],
        url("group_add"): ["Add Sender Group", "Submit and Add Senders"],
        url("group_edit", "ALLOWED_LIST"): ["Edit Sender Group: ALLOWED_LIST", "Order"],
        url("group_edit", "ALL"): ["ALL is always last"],
        url("group", "ALLOWED_LIST"): ["Sender Group: ALLOWED_LIST", "Add Senders...", "No senders"],
        url("group", "ALL"): ["ALL holds every host that no sender group before it holds"],
        url("senders_add", "ALLOWED_LIST"): ["Add Senders to ALLOWED_LIST", "10.1.0.0/16"],
        url("find_senders"): ["Find Senders"],
        url("hat_import"): ["Import HAT (Listener IncomingMail)", "HAT text", "Or a HAT file"],
    }
    for address, expected in pages.items():
        response = client.get(address)
        assert response.status_code == 200, address
        for words in expected:
            assert words in text(response), (address, words)
    export = client.get(url("hat_export"))
    assert export.status_code == 200 and export["Content-Type"] == "text/plain; charset=utf-8"


def test_menus_list_both_pages(admin):
    mail_policies = dict(menus_for(admin))["Mail Policies"]
    labels = [page.label for page in mail_policies]
    assert labels.index("HAT Overview") + 1 == labels.index("Mail Flow Policies")


def test_unknown_names_are_not_found(login, admin):
    client = login(admin)
    assert client.get(POLICIES, {"listener": "Nope"}).status_code == 404
    assert client.get(HAT, {"listener": "Nope"}).status_code == 404
    assert client.get(reverse("listeners:policy_edit", args=["Nope", "ACCEPTED"])).status_code == 404
    assert client.get(url("policy_edit", "NOPE")).status_code == 404
    assert client.get(url("group", "NOPE")).status_code == 404
    assert client.post(url("group_delete", "NOPE")).status_code == 404


def test_the_listener_selector_chooses_the_listener(login, admin):
    stage_listener(admin, "Relay", 2626, kind="private")
    client = login(admin)
    page = text(client.get(POLICIES, {"listener": "Relay"}))
    assert '<option value="Relay" selected>' in page and "RELAYED" in page and "THROTTLED" not in page
    page = text(client.get(HAT, {"listener": "Relay"}))
    assert "RELAYLIST" in page and "UNKNOWNLIST" not in page
    assert text(client.get(POLICIES)).count("selected>") == 1  # the first listener by name


def test_guest_may_not_open_the_pages(login, guest, unchanged):
    client = login(guest)
    for address in (POLICIES, HAT, url("group", "ALL"), url("hat_export"), url("find_senders")):
        assert client.get(address).status_code == 403
    assert client.post(url("policy_delete", "THROTTLED")).status_code == 403
    unchanged()


# --- Mail Flow Policies -------------------------------------------------------------------


def test_the_table_shows_what_each_policy_gets(login, admin):
    stage(admin, lambda: address_lists.create("Partners", ["partner.example.org"]))
    stage(
        admin, lambda: hat.set_default_parameters(CLUSTER, LISTENER, tls="preferred", tls_verify_client=True)
    )
    stage(admin, lambda: hat.save_policy(CLUSTER, LISTENER, "THROTTLED", tls="required"))
    stage(
        admin,
        lambda: hat.save_policy(
            CLUSTER, LISTENER, "TRUSTED", tls="preferred", tls_mandatory_address_list="Partners"
        ),
    )
    page = text(login(admin).get(POLICIES))
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    cells = {
        row.split("</a>")[0].rsplit(">", 1)[1]: [cell.split("</td>")[0] for cell in row.split("<td>")[2:12]]
        for row in rows
    }
    limits = [
        "Use Default (10 MB)",
        "Use Default (50)",
        "Use Default (10)",
        "Use Default (20)",
        "Use Default (120)",
    ]
    assert cells["ACCEPTED"] == [
        "Accept",
        "Use Default (Preferred)",
        "Use Default (Yes)",
        "Use Default (None)",
        *limits,
        "2",  # UNKNOWNLIST and ALL
    ]
    assert cells["THROTTLED"] == ["Accept", "Required", "No", "None", *limits[:3], "10", "60", "1"]
    assert cells["TRUSTED"] == ["Accept", "Preferred", "No", "Partners", *limits[:3], "100", "600", "1"]
    assert 'id="default-parameters"' in page and "<tr><th>TLS</th><td>Preferred</td></tr>" in page


def test_the_policy_form_explains_each_choice(login, admin):
    page = text(login(admin).get(url("policy_add")))
    for words in (
        "STARTTLS is not offered",
        "STARTTLS is offered; the sender may use it but need not.",
        "responds with an error message to every command other than NOOP, EHLO, or QUIT: 530",
        "(RFC 3207)",
        "Takes the listener's Default Policy Parameters, now Off",
        "against the enabled Certificate Authorities lists",
        "Only with TLS Preferred: envelope senders that match this address list",
        "Answer the connection with 554",
        "Close the connection before the SMTP banner.",
        "the HAT goes on to the next sender group",
    ):
        assert words in page, words
    assert '<label for="id_tls_0"><input type="radio" name="tls" value="default"' in page
    assert "<legend>Connection Behavior</legend>" in page
    defaults = text(login(admin).get(url("default_parameters")))
    assert 'value="default"' not in defaults and 'value="required"' in defaults


def test_add_edit_and_delete_a_policy(login, admin):
    client = login(admin)
    back = f"{POLICIES}?listener={LISTENER}"
    response = client.post(
        url("policy_add"), policy_form(tls="preferred", tls_verify_client="on"), follow=True
    )
    assert response.redirect_chain == [(back, 302)] and SUBMITTED in text(response)
    row = policy("PARTNER")
    assert (row.connection_behavior, row.tls, row.tls_verify_client) == ("accept", "preferred", True)
    stage(admin, lambda: hat.save_group(CLUSTER, LISTENER, "PARTNERS", policy_name="PARTNER", create=True))
    response = client.post(
        url("policy_edit", "PARTNER"),
        policy_form(name="PARTNER2", connection_behavior="continue", tls="default"),
    )
    assert response.status_code == 302
    assert policy("PARTNER2").connection_behavior == "continue"
    assert ("PARTNERS", "PARTNER2") in [row[:2] for row in hat_rows()]  # the group follows the rename
    response = client.post(url("policy_delete", "PARTNER2"))
    assert response.status_code == 409
    assert (
        "Policy PARTNER2 is used by sender group(s) PARTNERS: give them another first. Nothing was changed."
        in text(response)
    )
    stage(admin, lambda: hat.delete_group(CLUSTER, LISTENER, "PARTNERS"))
    response = client.post(url("policy_delete", "PARTNER2"), follow=True)
    assert response.redirect_chain == [(back, 302)]
    assert not MailFlowPolicy.objects.filter(name="PARTNER2").exists()


@pytest.mark.parametrize(
    "values,message",
    [
        (
            {"tls": "default", "tls_verify_client": "on"},
            "With TLS 'Use Default', Verify Client Certificate and TLS is Mandatory for Address List come "
            "from the Default Policy Parameters: leave them unset",
        ),
        (
            {"tls": "off", "tls_verify_client": "on"},
            "Verify Client Certificate needs TLS Preferred or Required",
        ),
        (
            {"tls": "required", "tls_mandatory_address_list": "Partners"},
            "TLS is Mandatory for Address List applies only with TLS Preferred",
        ),
        ({"name": "ACCEPTED"}, "Listener IncomingMail already has a policy named 'ACCEPTED'"),
    ],
)
def test_refused_policies_say_why_and_store_nothing(login, admin, values, message):
    stage(admin, lambda: address_lists.create("Partners", ["partner.example.org"]))
    before = list(MailFlowPolicy.objects.values_list("name", "tls", "tls_verify_client"))
    response = login(admin).post(url("policy_add"), policy_form(**values))
    assert response.status_code == 409
    assert f"{message}. {NOTHING_CHANGED}" in text(response)
    assert list(MailFlowPolicy.objects.values_list("name", "tls", "tls_verify_client")) == before


@pytest.mark.parametrize(
    "values,field,message",
    [
        ({"name": "a/b"}, "name", "'a/b' is not a valid name"),
        ({"connection_behavior": "bounce"}, "connection_behavior", "Select a valid choice."),
        ({"tls": "always"}, "tls", "Select a valid choice."),
        (
            {"tls": "preferred", "tls_mandatory_address_list": "Gone"},
            "",
            "There is no address list named 'Gone'",
        ),
    ],
)
def test_bad_fields_are_shown_next_to_the_field(login, admin, unchanged, values, field, message):
    response = login(admin).post(url("policy_add"), policy_form(**values))
    assert response.status_code == 400
    page = text(response)
    assert f'<div class="error">{message}' in page
    assert page.index('class="field has-error"') < page.index(message)
    unchanged()


def test_default_policy_parameters(login, admin):
    client = login(admin)
    response = client.post(url("default_parameters"), default_form(tls="required", tls_verify_client="on"))
    assert response.status_code == 302
    listener = Listener.objects.at(CLUSTER).get(name=LISTENER)
    assert (listener.default_tls, listener.default_tls_verify_client) == ("required", True)
    assert "Use Default (Required)" in text(client.get(POLICIES))
    assert "now Required" in text(client.get(url("policy_add")))
    response = client.post(url("default_parameters"), default_form(tls="default"))
    assert response.status_code == 400 and "Select a valid choice." in text(response)
    response = client.post(url("default_parameters"), default_form(tls="off", tls_verify_client="on"))
    assert response.status_code == 409
    assert f"Verify Client Certificate needs TLS Preferred or Required. {NOTHING_CHANGED}" in text(response)
    assert Listener.objects.at(CLUSTER).get(name=LISTENER).default_tls == "required"


def test_htmx_submits_swap_the_form_or_redirect(login, admin):
    client = login(admin)
    response = client.post(url("policy_add"), policy_form(tls="off", tls_verify_client="on"), headers=HTMX)
    page = text(response)
    assert response.status_code == 409 and not page.lstrip().startswith("<!DOCTYPE")
    assert 'hx-target="#policy-form"' in page and "Verify Client Certificate needs TLS Preferred" in page
    response = client.post(url("policy_add"), policy_form(), headers=HTMX)
    assert (response.status_code, response["HX-Redirect"]) == (200, f"{POLICIES}?listener={LISTENER}")


# --- HAT Overview: sender groups --------------------------------------------------------


def test_the_overview_lists_groups_in_order(login, admin):
    stage(admin, lambda: hat.add_senders(CLUSTER, LISTENER, "BLOCKED_LIST", ["192.0.2.0/24", "198.51.100.7"]))
    page = text(login(admin).get(HAT))
    names = ["ALLOWED_LIST", "BLOCKED_LIST", "SUSPECTLIST", "UNKNOWNLIST", "ALL"]
    assert [page.index(f">{name}</a>") for name in names] == sorted(
        page.index(f">{name}</a>") for name in names
    )
    assert "<td>2</td>\n      <td><a" in page.split(">BLOCKED_LIST</a>")[1]
    assert "Senders you trust" in page and "every other host" in page
    assert 'aria-label="Delete sender group ALL"' not in page
    assert 'aria-label="Delete sender group SUSPECTLIST"' in page


def test_add_move_rename_and_delete_a_group(login, admin):
    client = login(admin)
    back = f"{HAT}?listener={LISTENER}"
    response = client.post(url("group_add"), group_form(order="1", comment="Our partners"))
    assert response.status_code == 302 and response["Location"] == back
    assert hat_rows()[0] == ("PARTNERS", "TRUSTED", "Our partners", [])
    response = client.post(url("group_add"), group_form(name="LATE"))
    assert group_names()[-2:] == ["LATE", "ALL"]  # no order: last before ALL
    response = client.post(url("group_edit", "PARTNERS"), group_form(name="PARTNERS", order="3"))
    assert response["Location"] == url("group", "PARTNERS")
    assert group_names() == [
        "ALLOWED_LIST",
        "BLOCKED_LIST",
        "PARTNERS",
        "SUSPECTLIST",
        "UNKNOWNLIST",
        "LATE",
        "ALL",
    ]
    page = text(client.get(url("group_edit", "PARTNERS")))
    assert 'name="order" value="3"' in page and 'max="6"' in page
    client.post(url("group_edit", "PARTNERS"), group_form(name="FRIENDS", order="3", policy="ACCEPTED"))
    assert ("FRIENDS", "ACCEPTED") in [row[:2] for row in hat_rows()]
    response = client.post(url("group_delete", "FRIENDS"), follow=True)
    assert response.redirect_chain == [(back, 302)]
    assert "FRIENDS" not in group_names()
    assert text(client.get(url("group_edit", "LATE"))).count('name="order" value="5"') == 1


@pytest.mark.parametrize(
    "values,message",
    [
        ({"name": "ALLOWED_LIST"}, "Listener IncomingMail already has a sender group named 'ALLOWED_LIST'"),
        ({"name": "all"}, "Listener IncomingMail already has a sender group named 'all'"),
        ({"order": "7"}, "The order must be from 1 to 5 (ALL stays last)"),
        ({"order": "0"}, "The order must be from 1 to 5 (ALL stays last)"),
    ],
)
def test_refused_groups_say_why_and_store_nothing(login, admin, unchanged, values, message):
    response = login(admin).post(url("group_add"), group_form(**values))
    assert response.status_code == 409
    assert f"{message}. {NOTHING_CHANGED}" in text(response)
    unchanged()


def test_a_group_needs_a_policy_of_its_listener(login, admin, unchanged):
    response = login(admin).post(url("group_add"), group_form(policy="RELAYED"))
    assert response.status_code == 400
    assert "This listener has no mail flow policy named 'RELAYED'" in text(response)
    unchanged()


def test_all_keeps_its_name_and_place(login, admin, unchanged):
    client = login(admin)
    response = client.post(url("group_delete", "ALL"))
    assert response.status_code == 409
    assert (
        "The ALL sender group cannot be deleted: it holds every host no other group holds. " + NOTHING_CHANGED
        in text(response)
    )
    unchanged()
    response = client.post(url("group_edit", "ALL"), group_form(name="EVERYONE", order="1", policy="BLOCKED"))
    assert response.status_code == 302
    assert hat_rows()[-1] == ("ALL", "BLOCKED", "", ["ALL"])


def test_submit_and_add_senders(login, admin):
    response = login(admin).post(url("group_add"), group_form(then="add_senders"))
    assert response.status_code == 302 and response["Location"] == url("senders_add", "PARTNERS")


# --- senders ------------------------------------------------------------------------------


def test_add_senders_one_a_line_or_comma_separated(login, admin):
    stage(admin, lambda: hat.add_senders(CLUSTER, LISTENER, "SUSPECTLIST", ["10.1.0.0/16"]))
    client = login(admin)
    response = client.post(
        url("senders_add", "ALLOWED_LIST"),
        {"senders": "10.1.2.3/32, 2001:DB8::1\n\n.Example.COM\nmail.example.org,10.9.9.1-50"},
        follow=True,
    )
    assert response.redirect_chain == [(url("group", "ALLOWED_LIST"), 302)]
    assert senders_of("ALLOWED_LIST") == [
        "10.1.2.3/32",
        "2001:db8::1",
        ".example.com",
        "mail.example.org",
        "10.9.9.1-50",
    ]
    page = text(response)
    assert SUBMITTED in page
    assert (
        "10.1.2.3/32 overlaps 10.1.0.0/16 in sender group SUSPECTLIST; ALLOWED_LIST comes first, "
        "so its policy applies where both match" in page
    )
    assert "5 senders" in page and 'name="host" value="mail.example.org"' in page


@pytest.mark.parametrize(
    "typed,message",
    [
        ("10.1.1.1", "Sender group ALLOWED_LIST: the entry '10.1.1.1' is listed twice"),
        ("10.2.2.2\n10.2.2.2", "Sender group ALLOWED_LIST: the entry '10.2.2.2' is listed twice"),
        (
            "10.1.2.3/16",
            "Sender group ALLOWED_LIST: the entry '10.1.2.3/16' has host bits set; did you mean 10.1.0.0/16?",
        ),
        ("10.1.0.0/33", "Sender group ALLOWED_LIST: the entry '10.1.0.0/33' is not a CIDR block"),
        ("SBRS[-10:-2]", "needs SenderBase reputation, which this appliance does not use"),
        ("ALL", "Sender group ALLOWED_LIST: 'ALL' belongs only to the ALL group, which holds nothing else"),
    ],
)
def test_bad_or_repeated_senders_are_refused_and_nothing_is_stored(login, admin, typed, message):
    stage(admin, lambda: hat.add_senders(CLUSTER, LISTENER, "ALLOWED_LIST", ["10.1.1.1"]))
    response = login(admin).post(url("senders_add", "ALLOWED_LIST"), {"senders": f"10.3.3.3\n{typed}"})
    assert response.status_code == 409
    page = text(response)
    assert message in page and NOTHING_CHANGED in page
    assert page.index("Error") < page.index("<textarea")  # the refusal above the form
    assert senders_of("ALLOWED_LIST") == ["10.1.1.1"]


def test_an_empty_add_is_refused_next_to_the_field(login, admin, unchanged):
    response = login(admin).post(url("senders_add", "ALLOWED_LIST"), {"senders": ""})
    assert response.status_code == 400
    assert '<div class="error">Give at least one sender (an IP address, CIDR block' in text(response)
    unchanged()


def test_remove_selected_senders(login, admin):
    stage(
        admin,
        lambda: hat.add_senders(
            CLUSTER, LISTENER, "BLOCKED_LIST", ["192.0.2.1", "192.0.2.2", ".spam.example"]
        ),
    )
    client = login(admin)
    page = url("group", "BLOCKED_LIST")
    response = client.post(page, {"host": ["192.0.2.1", ".spam.example"]}, follow=True)
    assert response.redirect_chain == [(page, 302)] and SUBMITTED in text(response)
    assert senders_of("BLOCKED_LIST") == ["192.0.2.2"]
    response = client.post(page, {}, follow=True)
    assert "Select the senders to remove." in text(response)
    response = client.post(page, {"host": ["192.0.2.9"]})
    assert response.status_code == 409
    assert f"Sender group BLOCKED_LIST does not hold 192.0.2.9. {NOTHING_CHANGED}" in text(response)
    assert senders_of("BLOCKED_LIST") == ["192.0.2.2"]


def test_search_and_pages_of_a_group(login, admin):
    bulk_senders("ALLOWED_LIST", 250)
    client = login(admin)
    page = text(client.get(url("group", "ALLOWED_LIST")))
    assert "250 senders" in page and "Page 1 of 3" in page
    assert 'value="10.100.0.99"' in page and 'value="10.100.0.100"' not in page
    page = text(client.get(url("group", "ALLOWED_LIST"), {"page": 3}))
    assert 'value="10.100.0.249"' in page and 'value="10.100.0.199"' not in page
    partial = text(client.get(url("group", "ALLOWED_LIST"), {"q": "10.100.0.24"}, headers=HTMX))
    assert not partial.lstrip().startswith("<!DOCTYPE") and "<h2>" not in partial
    assert partial.count('name="host"') == 11  # .24 and .240 to .249
    assert "11 senders matching “10.100.0.24”" in partial
    assert f'action="{url("group", "ALLOWED_LIST")}?q=10.100.0.24"' in partial
    assert "No sender matches “nothing”." in text(client.get(url("group", "ALLOWED_LIST"), {"q": "nothing"}))


# --- Find Senders --------------------------------------------------------------------------


@pytest.fixture
def populated(admin):
    """A /32 in ALLOWED_LIST inside a /16 of the later SUSPECTLIST; names in BLOCKED_LIST."""
    stage(admin, lambda: hat.add_senders(CLUSTER, LISTENER, "SUSPECTLIST", ["10.1.0.0/16"]))
    stage(admin, lambda: hat.add_senders(CLUSTER, LISTENER, "ALLOWED_LIST", ["10.1.2.3/32", "2001:db8::/32"]))
    stage(
        admin,
        lambda: hat.add_senders(CLUSTER, LISTENER, "BLOCKED_LIST", [".spam.example", "bad.example.org"]),
    )


def find(client, address: str, hostname: str = "", **kwargs):
    return text(client.get(url("find_senders"), {"address": address, "hostname": hostname}, **kwargs))


def test_find_senders_first_group_wins(login, admin, populated):
    client = login(admin)
    answer = find(client, "10.1.2.3", headers=HTMX)
    assert not answer.lstrip().startswith("<!DOCTYPE") and 'id="find-answer"' in answer
    assert ">ALLOWED_LIST</a>, by its entry 10.1.2.3/32" in answer
    assert ">TRUSTED</a> (Accept)" in answer
    assert "<tr><th>TLS</th><td>Use Default (Off)</td></tr>" in answer
    assert "<li>ALLOWED_LIST holds 10.1.2.3/32</li>" in answer
    answer = find(client, "10.1.9.9", headers=HTMX)
    assert ">SUSPECTLIST</a>, by its entry 10.1.0.0/16" in answer and ">THROTTLED</a>" in answer
    answer = find(client, "198.51.100.1", "MX1.Spam.Example", headers=HTMX)
    assert ">BLOCKED_LIST</a>, by its entry .spam.example" in answer and "(Reject)" in answer
    answer = find(client, "2001:db8:1::25", headers=HTMX)
    assert ">ALLOWED_LIST</a>, by its entry 2001:db8::/32" in answer
    answer = find(client, "192.0.2.1", headers=HTMX)
    assert ">ALL</a>" in answer and "<li>No other sender group holds it, so ALL does</li>" in answer


def test_find_senders_follows_continue(login, admin, populated):
    stage(
        admin, lambda: hat.save_policy(CLUSTER, LISTENER, "PASS", connection_behavior="continue", create=True)
    )
    stage(admin, lambda: hat.save_group(CLUSTER, LISTENER, "ALLOWED_LIST", policy_name="PASS"))
    stage(admin, lambda: hat.set_default_parameters(CLUSTER, LISTENER, tls="required"))
    answer = find(login(admin), "10.1.2.3", headers=HTMX)
    assert "<li>ALLOWED_LIST holds 10.1.2.3/32, but its policy PASS says Continue</li>" in answer
    assert "<li>SUSPECTLIST holds 10.1.0.0/16</li>" in answer
    assert "<tr><th>TLS</th><td>Use Default (Required)</td></tr>" in answer


def test_find_senders_refusals_and_the_whole_page(login, admin, populated):
    client = login(admin)
    assert "'10.1.2' is not an IPv4 or IPv6 address" in find(client, "10.1.2", headers=HTMX)
    assert "'.example.com' is not a host name" in find(client, "10.1.2.3", ".example.com", headers=HTMX)
    assert "IP address: This field is required." in find(client, "", headers=HTMX)
    page = find(client, "10.1.9.9")  # without htmx: the HAT Overview with the answer
    assert page.lstrip().startswith("<!DOCTYPE") and "Add Sender Group..." in page
    assert 'id="find-answer"' in page and 'value="10.1.9.9"' in page


# --- Import HAT / Export HAT -----------------------------------------------------------------


def test_export_then_import_gives_the_same_hat(login, admin, populated):
    client = login(admin)
    stage(
        admin,
        lambda: hat.save_group(
            CLUSTER, LISTENER, "PARTNERS", policy_name="ACCEPTED", comment="x # y", create=True
        ),
    )
    before = hat_rows()
    export = client.get(url("hat_export"))
    assert export["Content-Disposition"] == 'attachment; filename="hat-IncomingMail.txt"'
    exported = export.content.decode()
    assert exported.splitlines()[2:6] == [
        "ALLOWED_LIST $TRUSTED # Senders you trust",
        "    10.1.2.3/32",
        "    2001:db8::/32",
        "BLOCKED_LIST $BLOCKED # Senders you refuse",
    ]
    assert exported.endswith("PARTNERS $ACCEPTED # x # y\nALL $ACCEPTED\n")
    response = client.post(url("hat_import"), {"text": "OTHERS $BLOCKED\n    192.0.2.1\nALL $ACCEPTED\n"})
    assert response.status_code == 302 and response["Location"] == f"{HAT}?listener={LISTENER}"
    assert hat_rows() == [("OTHERS", "BLOCKED", "", ["192.0.2.1"]), ("ALL", "ACCEPTED", "", ["ALL"])]
    upload = SimpleUploadedFile("hat.txt", exported.encode())
    response = client.post(url("hat_import"), {"text": "", "upload": upload}, follow=True)
    assert "Imported 6 sender groups with 5 senders." in text(response)
    assert hat_rows() == before
    assert client.get(url("hat_export")).content.decode() == exported


def test_import_refusals_name_the_lines_and_store_nothing(login, admin, populated):
    client = login(admin)
    before = hat_rows()
    bad = "ALLOWED_LIST $TRUSTED\n    10.1.2.3/16\n\n  mail.example.com\n    mail.example.com\nALL\n"
    response = client.post(url("hat_import"), {"text": bad})
    assert response.status_code == 409
    page = text(response)
    assert f"The HAT cannot be imported. {NOTHING_CHANGED}" in page
    assert "<li>line 2: the entry '10.1.2.3/16' has host bits set; did you mean 10.1.0.0/16?</li>" in page
    assert "<li>line 5: the entry 'mail.example.com' is listed twice in ALLOWED_LIST</li>" in page
    assert (
        "<li>line 6: 'ALL' is not a group line: give NAME $POLICY, optionally followed by # comment</li>"
        in page
    )
    response = client.post(url("hat_import"), {"text": "PARTNERS $GOLD\n    10.0.0.1\nLAST $ACCEPTED\n"})
    assert response.status_code == 409
    page = text(response)
    assert "<li>The last sender group must be ALL (the hosts no other group holds)</li>" in page
    assert "<li>Sender group PARTNERS names policy 'GOLD', which this listener does not have</li>" in page
    for blank in ({"text": "  \n"}, {"upload": SimpleUploadedFile("hat.txt", b" \n")}):
        response = client.post(url("hat_import"), blank)
        assert response.status_code == 400 and "Give the HAT as text or as a file." in text(response)
    upload = SimpleUploadedFile("hat.bin", b"\xff\xfe\x00")
    response = client.post(url("hat_import"), {"upload": upload})
    assert response.status_code == 400 and "The file is not UTF-8 text." in text(response)
    assert hat_rows() == before


# --- the Read-Only Operator -------------------------------------------------------------


def test_read_only_operator_sees_a_preview_and_nothing_is_stored(login, admin, read_only):
    stage(admin, lambda: hat.save_policy(CLUSTER, LISTENER, "SPARE", create=True))
    workflow.commit(admin)
    before = registry.candidate()
    client = login(read_only)
    posts = [
        (url("policy_add"), policy_form()),
        (url("policy_edit", "SPARE"), policy_form(name="SPARE", tls="required")),
        (url("policy_delete", "SPARE"), {}),
        (url("default_parameters"), default_form(tls="preferred")),
        (url("group_add"), group_form()),
        (url("group_edit", "SUSPECTLIST"), group_form(name="SUSPECTLIST", order="1")),
        (url("group_delete", "SUSPECTLIST"), {}),
        (url("senders_add", "ALLOWED_LIST"), {"senders": "10.1.1.1"}),
        (url("hat_import"), {"text": "ALL $BLOCKED\n"}),
    ]
    for address, data in posts:
        response = client.post(address, data)
        assert response.status_code == 200, address
        page = text(response)
        assert PREVIEWED in page and "What your submit would change" in page, address
    page = text(client.post(url("senders_add", "ALLOWED_LIST"), {"senders": "10.1.1.1"}))
    assert "10.1.1.1" in page.split("What your submit would change")[1]
    response = client.post(url("group", "BLOCKED_LIST"), {"host": ["192.0.2.1"]})
    assert response.status_code == 409  # a refusal is a refusal, preview or not
    assert registry.candidate() == before
    assert not workflow.has_uncommitted_changes()


# --- 10,000 senders in one group ------------------------------------------------------------


def test_query_counts_do_not_grow_with_the_hat(login, admin, django_assert_max_num_queries):
    # A page's count includes one query of Centralized Management's mode selector (is there a cluster)
    # and one of the inactivity timeout (appliance.sessions: the running version's number).
    bulk_senders("UNKNOWNLIST", 10_000)
    client = login(admin)
    with django_assert_max_num_queries(14):
        page = text(client.get(url("group", "UNKNOWNLIST")))
    assert "10000 senders" in page and "Page 1 of 100" in page and page.count('name="host"') == 100
    with django_assert_max_num_queries(14):
        page = text(client.get(url("group", "UNKNOWNLIST"), {"q": "10.100.1", "page": 2}))
    assert "Page 2 of" in page
    with django_assert_max_num_queries(11):
        page = text(client.get(HAT))
    assert "<td>10000</td>" in page
    with django_assert_max_num_queries(12):
        page = text(client.get(POLICIES))
    assert "ACCEPTED" in page
    with django_assert_max_num_queries(7):
        export = client.get(url("hat_export")).content.decode()
    assert len(export.splitlines()) == 2 + 5 + 10_000
    with django_assert_max_num_queries(10):
        answer = find(client, "10.100.39.15", headers=HTMX)
    assert ">UNKNOWNLIST</a>, by its entry 10.100.39.15" in answer

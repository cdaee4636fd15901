"""Recipient Access Table: the entry syntax and first match, the rules, ``<rat>`` in the file, the
shipped RAT, Mail Policies > Recipient Access Table, ``listenerconfig edit NAME rcptaccess``, and the
gateway refusing recipients with a real SMTP client."""

from __future__ import annotations

import html
import io
import smtplib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import CommandError
from django.urls import reverse

from appliance import configfile, workflow
from appliance.config.levels import CLUSTER, CLUSTER_MODE
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render
from appliance.models import AuditEvent
from appliance.navigation import menus_for
from listeners import hat, rat, store
from listeners.models import Listener
from listeners.rat import RatRefused
from tests.console import refused, run
from tests.gateway_fixtures import (  # noqa: F401 (fixtures)
    LOOPBACK,
    gateway_fixture,
    loop_thread_fixture,
    mail_log_fixture,
    message,
    mid_of,
    spooled,
)
from tests.listener_fixtures import stage_listener, unchanged_fixture  # noqa: F401 (fixture)

IN = "IncomingMail"  # public, made at first start with APPLIANCE_HOSTNAME=esa.example.com
SHIPPED = [{"recipient": "example.com", "action": "accept"}, {"recipient": "ALL", "action": "reject"}]
FORMS = "example.com, .example.com, user@example.com, user@ or ALL"
PRIVATE = "Listener Relay is private: it has no RAT (it relays for its RELAYLIST hosts)"
NOTHING_CHANGED = "Nothing was changed."
PREVIEWED = "Read-Only Operator: this is what your submit would change. Nothing was stored."
HTMX = {"HX-Request": "true"}
RCPTACCESS = ("listenerconfig", "edit", IN, "rcptaccess")


def entries(name: str = IN) -> list[tuple[str, str]]:
    """The listener's candidate RAT as (recipient, action), in order."""
    return [(e["recipient"], e["action"]) for e in rat.table(Listener.objects.at(CLUSTER).get(name=name))]


def stage(user, apply) -> None:
    workflow.submit(user, "test setup", apply)


def stage_table(user, *lines: str) -> None:
    stage(user, lambda: rat.set_table(CLUSTER, IN, rat.parse_table("\n".join(lines))))


def stage_relay(user) -> None:
    stage_listener(user, "Relay", 2626, kind="private")


def refuses(user, apply, message: str, problems: list[str] | None = None) -> None:
    """``apply`` inside a submit is refused with ``message``; the candidate and the lock are as before."""
    before = registry.candidate()
    owner = workflow.lock_state().owner_name
    with pytest.raises(RatRefused) as refusal:
        workflow.submit(user, "refused", apply)
    assert str(refusal.value) == message
    assert refusal.value.problems == (problems or [])
    assert registry.candidate() == before
    assert workflow.lock_state().owner_name == owner


# --- entry syntax ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed,written",
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("  .Sub.Example.com ", ".sub.example.com"),
        ("Joe@Example.com", "joe@example.com"),
        ("Postmaster@", "postmaster@"),
        ("all", "ALL"),
        (" ALL ", "ALL"),
    ],
)
def test_canonical_forms(typed, written):
    assert rat.canonical_recipient(typed) == written


@pytest.mark.parametrize(
    "typed",
    ["", "joe", "@example.com", "a@b@c", "*.example.com", "exa mple.com", "-x.example.com", "..x.com"],
)
def test_what_is_not_an_entry_is_refused_in_words(typed):
    with pytest.raises(ValueError) as refusal:
        rat.canonical_recipient(typed)
    assert str(refusal.value) == f"{typed.strip()!r} is not a recipient entry ({FORMS})"


def test_a_written_entry_must_be_canonical():
    rat.validate_written("sales@example.com")
    rat.validate_written("ALL")
    with pytest.raises(ValueError, match="^'Example.com' must be written as 'example.com'$"):
        rat.validate_written("Example.com")
    with pytest.raises(ValueError, match="^'all' must be written as 'ALL'$"):
        rat.validate_written("all")


@pytest.mark.parametrize(
    "entry,address,covered",
    [
        ("joe@example.com", "joe@example.com", True),
        ("joe@example.com", "Joe@EXAMPLE.com", True),  # without regard to case
        ("joe@example.com", "<joe@example.com>", True),
        ("joe@example.com", "ann@example.com", False),
        ("joe@example.com", "joe@mail.example.com", False),
        ("postmaster@", "postmaster@example.com", True),
        ("postmaster@", "Postmaster@anywhere.example.net", True),
        ("postmaster@", "postmaster2@example.com", False),
        ("example.com", "ann@example.com", True),
        ("example.com", "ann@mail.example.com", False),  # not its subdomains
        ("example.com", "ann@badexample.com", False),
        (".example.com", "ann@mail.example.com", True),
        (".example.com", "ann@a.b.example.com", True),
        (".example.com", "ann@example.com", False),  # .domain is not the domain itself
        (".example.com", "ann@badexample.com", False),
        ("ALL", "anyone@anywhere.example", True),
        ("ALL", "not an address", True),
        ("example.com", "example.com", False),  # no user part: only ALL covers it
        ("example.com", "@example.com", False),
    ],
)
def test_covers(entry, address, covered):
    assert rat.covers(entry, address) is covered


def test_decide_takes_the_first_entry_that_covers():
    table = rat.parse_table(
        "joe@example.com REJECT\nexample.com ACCEPT\n.example.com REJECT\npostmaster@ ACCEPT\nALL REJECT\n"
    )
    decided = {
        address: (rat.decide(table, address)["recipient"], rat.decide(table, address)["action"])
        for address in (
            "joe@example.com",
            "ann@example.com",
            "ann@mail.example.com",
            "postmaster@mail.example.com",  # .example.com comes first
            "postmaster@example.org",
            "ann@example.org",
        )
    }
    assert decided == {
        "joe@example.com": ("joe@example.com", "reject"),
        "ann@example.com": ("example.com", "accept"),
        "ann@mail.example.com": (".example.com", "reject"),
        "postmaster@mail.example.com": (".example.com", "reject"),
        "postmaster@example.org": ("postmaster@", "accept"),
        "ann@example.org": ("ALL", "reject"),
    }
    assert rat.decide(table[:-1], "ann@example.org") is None  # only a RAT without ALL leaves it open


def test_parse_and_format_are_inverse():
    text = "# partners first\nExample.COM accept\n\n  .example.com   Reject # subdomains\nALL ACCEPT\n"
    table = rat.parse_table(text)
    assert table == [
        {"recipient": "example.com", "action": "accept"},
        {"recipient": ".example.com", "action": "reject"},
        {"recipient": "ALL", "action": "accept"},
    ]
    written = rat.format_table(IN, table)
    assert written.splitlines()[2:] == ["example.com ACCEPT", ".example.com REJECT", "ALL ACCEPT"]
    assert written.startswith("# Recipient Access Table of listener IncomingMail")
    assert rat.parse_table(written) == table


def test_parse_refuses_every_bad_line_by_number():
    with pytest.raises(RatRefused) as refusal:
        rat.parse_table(
            "example.com ACCEPT\nexample.org\nbad..name ACCEPT\nx.com DELIVER\n\nALL REJECT extra\n"
        )
    assert str(refusal.value) == "The RAT cannot be imported"
    assert refusal.value.problems == [
        "line 2: 'example.org' is not an entry: give RECIPIENT ACCEPT or RECIPIENT REJECT",
        f"line 3: 'bad..name' is not a recipient entry ({FORMS})",
        "line 4: 'x.com DELIVER' is not an entry: give RECIPIENT ACCEPT or RECIPIENT REJECT",
        "line 6: 'ALL REJECT extra' is not an entry: give RECIPIENT ACCEPT or RECIPIENT REJECT",
    ]


# --- the rules -----------------------------------------------------------------------------------


def _problems(kind: str, text: str) -> list[tuple[int, str]]:
    item = {"listener_type": kind, "rat_entry": rat.parse_table(text)}
    return [(index, message) for (_, index), message in rat.problems(item)]


def test_the_rules_on_one_listener():
    assert _problems("public", "example.com ACCEPT\nALL REJECT") == []
    assert _problems("public", "ALL REJECT\nexample.com ACCEPT") == [
        (0, "ALL must be the last entry of the RAT"),
        (1, "The last entry of the RAT must be ALL"),
    ]
    assert _problems("public", "example.com ACCEPT\nEXAMPLE.com REJECT\nALL REJECT") == [
        (1, "The recipient 'example.com' is listed twice")
    ]
    assert _problems("public", "example.com ACCEPT\nALL REJECT\nALL ACCEPT") == [
        (1, "ALL must be the last entry of the RAT"),
        (2, "The recipient 'ALL' is listed twice"),
    ]
    assert _problems("private", "") == []
    assert _problems("private", "ALL ACCEPT") == [
        (0, "A private listener has no RAT: it relays for its RELAYLIST hosts")
    ]


def test_parse_checked_names_the_lines_of_rule_problems():
    with pytest.raises(RatRefused) as refusal:
        rat.parse_checked("# first\nALL REJECT\n\nexample.com ACCEPT # then\nEXAMPLE.COM REJECT\n")
    assert refusal.value.problems == [
        "line 2: ALL must be the last entry of the RAT",
        "line 5: The recipient 'example.com' is listed twice",
        "line 5: The last entry of the RAT must be ALL",
    ]


def test_replace_keeps_the_rules(admin):
    stage(
        admin,
        lambda: rat.replace(
            CLUSTER, IN, rat.parse_table("sales@example.org ACCEPT\nexample.com ACCEPT\nALL ACCEPT")
        ),
    )
    assert entries() == [("sales@example.org", "accept"), ("example.com", "accept"), ("ALL", "accept")]
    cannot = f"The RAT of listener {IN} cannot be saved"
    refuses(admin, lambda: rat.replace(CLUSTER, IN, []), cannot,
            ["The RAT needs at least its last entry, ALL ACCEPT or ALL REJECT"])  # fmt: skip
    refuses(admin, lambda: rat.replace(CLUSTER, IN, rat.parse_table("example.com ACCEPT")), cannot,
            ["The last entry of the RAT must be ALL"])  # fmt: skip
    refuses(admin, lambda: rat.replace(CLUSTER, IN, rat.parse_table("a.com ACCEPT\na.com REJECT\nALL ACCEPT")), cannot,
            ["The recipient 'a.com' is listed twice"])  # fmt: skip
    refuses(admin, lambda: rat.replace(CLUSTER, "Nope", SHIPPED), "There is no listener named 'Nope'")


def test_a_private_listener_has_no_rat(admin):
    stage_relay(admin)
    assert entries("Relay") == []
    refuses(admin, lambda: rat.replace(CLUSTER, "Relay", SHIPPED), "The RAT of listener Relay cannot be saved",
            ["A private listener has no RAT: it relays for its RELAYLIST hosts"])  # fmt: skip
    for apply in (
        lambda: rat.add_entry(CLUSTER, "Relay", "example.com", "accept"),
        lambda: rat.set_table(CLUSTER, "Relay", SHIPPED),
        lambda: rat.import_table(CLUSTER, "Relay", "ALL ACCEPT\n"),
        lambda: rat.delete_entry(CLUSTER, "Relay", "example.com"),
    ):
        refuses(admin, apply, PRIVATE)


def test_entry_operations(admin):
    stage(admin, lambda: rat.add_entry(CLUSTER, IN, "Sales@Example.org", "ACCEPT"))
    stage(admin, lambda: rat.add_entry(CLUSTER, IN, ".example.com", "reject", order=1))
    assert entries() == [
        (".example.com", "reject"), ("example.com", "accept"), ("sales@example.org", "accept"), ("ALL", "reject"),
    ]  # fmt: skip
    stage(admin, lambda: rat.edit_entry(CLUSTER, IN, "sales@example.org", order=1, action="reject"))
    stage(admin, lambda: rat.edit_entry(CLUSTER, IN, "example.com", new_recipient="example.net"))
    stage(admin, lambda: rat.edit_entry(CLUSTER, IN, "all", action="accept"))
    assert entries() == [
        ("sales@example.org", "reject"), (".example.com", "reject"), ("example.net", "accept"), ("ALL", "accept"),
    ]  # fmt: skip
    stage(admin, lambda: rat.delete_entry(CLUSTER, IN, ".EXAMPLE.com"))
    assert entries() == [("sales@example.org", "reject"), ("example.net", "accept"), ("ALL", "accept")]


@pytest.mark.parametrize(
    "apply,message",
    [
        (lambda: rat.add_entry(CLUSTER, IN, "Example.com", "reject"),
         "The RAT of listener IncomingMail already has an entry for 'example.com'"),
        (lambda: rat.add_entry(CLUSTER, IN, "ALL", "accept"),
         "ALL is always the last entry of the RAT: change its action instead"),
        (lambda: rat.add_entry(CLUSTER, IN, "not an entry", "accept"), f"'not an entry' is not a recipient entry ({FORMS})"),
        (lambda: rat.add_entry(CLUSTER, IN, "example.org", "deliver"), "'deliver' is not an action of the RAT (accept or reject)"),
        (lambda: rat.add_entry(CLUSTER, IN, "example.org", "accept", order=3),
         "The order must be from 1 to 2 (ALL stays last)"),
        (lambda: rat.add_entry(CLUSTER, IN, "example.org", "accept", order=0),
         "The order must be from 1 to 2 (ALL stays last)"),
        (lambda: rat.edit_entry(CLUSTER, IN, "example.org", action="reject"),
         "The RAT of listener IncomingMail has no entry for 'example.org'"),
        (lambda: rat.edit_entry(CLUSTER, IN, "example.com", order=2), "The order must be from 1 to 1 (ALL stays last)"),
        (lambda: rat.edit_entry(CLUSTER, IN, "ALL", order=1),
         "ALL is always the last entry of the RAT: only its action can change"),
        (lambda: rat.edit_entry(CLUSTER, IN, "ALL", new_recipient="example.org"),
         "ALL is always the last entry of the RAT: only its action can change"),
        (lambda: rat.edit_entry(CLUSTER, IN, "example.com", new_recipient="ALL"),
         "ALL is always the last entry of the RAT: change its action instead"),
        (lambda: rat.delete_entry(CLUSTER, IN, "ALL"),
         "The ALL entry cannot be deleted: every RAT ends with it (change its action instead)"),
        (lambda: rat.delete_entry(CLUSTER, IN, "example.org"), "The RAT of listener IncomingMail has no entry for 'example.org'"),
        (lambda: rat.add_entry(CLUSTER, "Nope", "example.org", "accept"), "There is no listener named 'Nope'"),
    ],
)  # fmt: skip
def test_entry_operations_refuse_in_words(admin, apply, message):
    refuses(admin, apply, message)


# --- <rat> in the configuration file --------------------------------------------------------------

PUBLIC = [
    "<config>",  # 1
    "<listeners>",
    "<listener>",  # 3
    "<listener_name>Inbound</listener_name>",
    "<listener_type>public</listener_type>",  # 5
    "<interface_name>Management</interface_name>",
    "<port>26</port>",  # 7
    "<rat>",
    "<rat_entry>",  # 9
    "<recipient>example.com</recipient>",
    "<action>accept</action>",  # 11
    "</rat_entry>",
    "<rat_entry>",  # 13
    "<recipient>ALL</recipient>",
    "<action>reject</action>",  # 15
    "</rat_entry>",
    "</rat>",  # 17
    "</listener>",
    "</listeners>",  # 19
    "</config>",
]


def public(**lines: str) -> bytes:
    """The Inbound listener's document, line N replaced by ``lines['lN']`` (the numbers stay)."""
    text = list(PUBLIC)
    for key, line in lines.items():
        text[int(key[1:]) - 1] = line
    return ("\n".join(text) + "\n").encode("latin-1")


def test_the_rat_round_trips_through_the_file(admin):
    stage_table(admin, "joe@example.com REJECT", "example.com ACCEPT", ".example.com ACCEPT",
                "postmaster@ ACCEPT", "ALL REJECT")  # fmt: skip
    config = {"listeners": registry.candidate()["listeners"]}
    saved = render(config, SecretMode.PLAIN)
    assert (
        "      <rat>\n"
        "        <rat_entry>\n"
        "          <recipient>joe@example.com</recipient>\n"
        "          <action>reject</action>\n"
        "        </rat_entry>\n"
        "        <rat_entry>\n"
        "          <recipient>example.com</recipient>\n"
        "          <action>accept</action>\n"
        "        </rat_entry>\n"
    ) in saved
    assert saved.index("</hat>") < saved.index("<rat>") < saved.index("</listener>")
    assert parse(saved.encode("latin-1")).config == config
    workflow.commit(admin, "rat")
    stage_table(admin, "ALL ACCEPT")
    workflow.load_document(admin, parse(saved.encode("latin-1")), "saved")
    assert entries() == [
        ("joe@example.com", "reject"), ("example.com", "accept"), (".example.com", "accept"),
        ("postmaster@", "accept"), ("ALL", "reject"),
    ]  # fmt: skip
    assert workflow.commit(admin, "same again") is None  # nothing differs from the running version


def test_a_listener_document_loads_with_its_rat(admin):
    workflow.load_document(admin, parse(public()), "inbound")
    assert entries("Inbound") == [("example.com", "accept"), ("ALL", "reject")]


def test_a_public_listener_without_rat_accepts_no_mail(admin):
    rat_lines = {f"l{number}": "" for number in range(8, 18)}
    workflow.load_document(admin, parse(public(**rat_lines)), "bare")
    assert entries("Inbound") == [("ALL", "reject")]


@pytest.mark.parametrize(
    "lines,problem",
    [
        ({"l10": "<recipient>Example.com</recipient>"},
         "line 10: <recipient> 'Example.com' must be written as 'example.com'"),
        ({"l10": "<recipient>not one</recipient>"},
         f"line 10: <recipient> 'not one' is not a recipient entry ({FORMS})"),
        ({"l14": "<recipient>all</recipient>"}, "line 14: <recipient> 'all' must be written as 'ALL'"),
        ({"l11": "<action>maybe</action>"}, "line 11: <action> must be one of accept, reject, not 'maybe'"),
        ({"l11": ""}, "line 9: <rat_entry> lacks <action>"),
        ({"l14": "<recipient>example.com</recipient>"}, "line 3: <listener> lists <rat_entry> 'example.com' twice"),
        ({"l14": "<recipient>example.org</recipient>"},
         "line 13: <rat_entry> The last entry of the RAT must be ALL"),
        ({"l5": "<listener_type>private</listener_type>"},
         "line 9: <rat_entry> A private listener has no RAT: it relays for its RELAYLIST hosts"),
        ({"l16": "</rat_entry><recipient>x.org</recipient>"},
         "line 16: <recipient> does not belong in <rat> (expected <rat_entry>)"),
    ],
    ids=["not-lower-case", "not-an-entry", "all-lower-case", "unknown-action", "no-action", "twice",
         "last-not-all", "private", "outside-an-entry"],  # fmt: skip
)  # fmt: skip
def test_a_bad_rat_is_refused_naming_its_line(admin, unchanged, lines, problem):
    with pytest.raises(ConfigFileError) as refusal:
        parse(public(**lines))
    assert refusal.value.problems == [problem]
    with pytest.raises(ConfigFileError):
        configfile.load(admin, public(**lines), None, "bad.xml")
    unchanged()


def test_all_not_last_names_both_entries():
    swapped = public(l10="<recipient>ALL</recipient>", l14="<recipient>example.com</recipient>")
    with pytest.raises(ConfigFileError) as refusal:
        parse(swapped)
    assert refusal.value.problems == [
        "line 9: <rat_entry> ALL must be the last entry of the RAT",
        "line 13: <rat_entry> The last entry of the RAT must be ALL",
    ]


# --- the shipped RAT -----------------------------------------------------------------------------


def test_incoming_mail_ships_with_the_hostnames_domain(admin):
    assert entries() == [("example.com", "accept"), ("ALL", "reject")]


def test_a_new_public_listener_accepts_the_candidate_hostnames_domain(admin):
    stage(admin, lambda: store.create(CLUSTER_MODE, "Inbound", "public", "Management", 2626))
    assert entries("Inbound") == [("example.com", "accept"), ("ALL", "reject")]
    run("sethostname", "mx.mail.example.org")  # staged, not committed: the candidate counts
    stage(admin, lambda: store.create(CLUSTER_MODE, "Second", "public", "Management", 2627))
    assert entries("Second") == [("mail.example.org", "accept"), ("ALL", "reject")]
    stage(admin, lambda: store.create(CLUSTER_MODE, "Relay", "private", "Management", 2628))
    assert entries("Relay") == []
    assert rat.shipped("public", "localhost") == [{"recipient": "ALL", "action": "reject"}]


# --- Mail Policies > Recipient Access Table ------------------------------------------------------

PAGE = reverse("listeners:rat")


def url(name: str, *args: str) -> str:
    return reverse(f"listeners:{name}", args=[IN, *args])


def text(response) -> str:
    return html.unescape(response.content.decode())


def table_rows(page: str) -> list[list[str]]:
    """The cells of the RAT table's rows: Order, Recipient (its link text), Action."""
    body = page.split('id="rat-entries"')[1].split("<tbody>")[1].split("</tbody>")[0]
    rows = []
    for row in body.split("<tr>")[1:]:
        cells = [cell.split("</td>")[0] for cell in row.split("<td>")[1:4]]
        rows.append([cells[0], cells[1].split("</a>")[0].rsplit(">", 1)[1], cells[2]])
    return rows


def test_every_page_renders(login, admin):
    client = login(admin)
    pages = {
        PAGE: ["Recipient Access Table (RAT)", "Listener:", "Add Entry...", "Edit RAT...", "Import RAT...",
               "Export RAT...", "Test Recipient", "example.com", "every other recipient"],
        f"{PAGE}?listener={IN}": ["550 5.7.1"],
        url("rat_edit"): ["Edit RAT (Listener IncomingMail)", "example.com ACCEPT\nALL REJECT\n</textarea>"],
        url("rat_entry_add"): ["Add RAT Entry (Listener IncomingMail)", "Order", "Recipient", "Accept", "Reject"],
        url("rat_entry_edit", "example.com"): ["Edit RAT Entry: example.com", 'value="1"'],
        url("rat_entry_edit", "ALL"): ["Edit RAT Entry: ALL", "ALL is always last"],
        url("rat_import"): ["Import RAT (Listener IncomingMail)", "RAT text", "Or a RAT file"],
        url("rat_test"): ["Test Recipient"],
    }  # fmt: skip
    for address, expected in pages.items():
        response = client.get(address)
        assert response.status_code == 200, address
        for words in expected:
            assert words in text(response), (address, words)
    assert table_rows(text(client.get(PAGE))) == [["1", "example.com", "Accept"], ["2", "ALL", "Reject"]]


def test_the_menu_lists_the_page_after_mail_flow_policies(admin):
    labels = [page.label for page in dict(menus_for(admin))["Mail Policies"]]
    assert labels.index("Mail Flow Policies") + 1 == labels.index("Recipient Access Table")


def test_the_selector_offers_public_listeners_and_explains_private_ones(login, admin):
    stage_relay(admin)
    stage(admin, lambda: store.create(CLUSTER_MODE, "Inbound", "public", "Management", 2627))
    client = login(admin)
    page = text(client.get(PAGE))
    assert '<option value="Inbound" selected>' in page and '<option value="IncomingMail">' in page
    assert 'value="Relay"' not in page
    assert "Private listener Relay has no RAT" in page and "RELAYLIST" in page
    page = text(client.get(PAGE, {"listener": "Relay"}))
    assert PRIVATE in page and 'id="rat-entries"' not in page
    assert client.get(PAGE, {"listener": "Nope"}).status_code == 404
    for address in (
        reverse("listeners:rat_edit", args=["Relay"]),
        reverse("listeners:rat_export", args=["Relay"]),
    ):
        assert client.get(address).status_code == 404


def test_no_public_listener_says_so(login, admin):
    stage(admin, lambda: store.delete(CLUSTER, IN))
    stage_relay(admin)
    page = text(login(admin).get(PAGE))
    assert 'id="no-public-listener"' in page and "No public listeners" in page
    assert "Private listener Relay has no RAT" in page


def test_guest_may_not_open_the_pages(login, guest, unchanged):
    client = login(guest)
    for address in (PAGE, url("rat_edit"), url("rat_export"), url("rat_test"), url("rat_entry_add")):
        assert client.get(address).status_code == 403
    assert client.post(url("rat_entry_delete", "example.com")).status_code == 403
    unchanged()


def test_edit_rat_replaces_the_table(login, admin):
    client = login(admin)
    typed = "# partners\nSales@Example.org accept\nexample.com ACCEPT\n.example.com REJECT\nall accept\n"
    response = client.post(url("rat_edit"), {"text": typed}, follow=True)
    assert response.redirect_chain[-1][0] == f"{PAGE}?listener={IN}"
    assert "Your changes have been submitted." in text(response)
    assert entries() == [
        ("sales@example.org", "accept"), ("example.com", "accept"), (".example.com", "reject"), ("ALL", "accept"),
    ]  # fmt: skip
    assert AuditEvent.objects.filter(detail="edited the RAT of listener IncomingMail").exists()
    assert (
        "sales@example.org ACCEPT\nexample.com ACCEPT\n.example.com REJECT\nALL ACCEPT\n</textarea>"
        in text(client.get(url("rat_edit")))
    )


@pytest.mark.parametrize(
    "typed,errors",
    [
        ("example.com ACCEPT\nexample.org\nbad..name REJECT\nALL REJECT\n",
         ["line 2: 'example.org' is not an entry: give RECIPIENT ACCEPT or RECIPIENT REJECT",
          f"line 3: 'bad..name' is not a recipient entry ({FORMS})"]),
        ("ALL REJECT\nexample.com ACCEPT\n",
         ["line 1: ALL must be the last entry of the RAT", "line 2: The last entry of the RAT must be ALL"]),
        ("example.com ACCEPT\n# again\nExample.com REJECT\nALL REJECT\n",
         ["line 3: The recipient 'example.com' is listed twice"]),
        ("# nothing but comments\n\n", ["Give the RAT: at least its last entry, ALL ACCEPT or ALL REJECT"]),
        ("", ["Give the RAT: at least its last entry, ALL ACCEPT or ALL REJECT"]),
    ],
)  # fmt: skip
def test_edit_rat_errors_stand_next_to_the_field_and_nothing_is_stored(
    login, admin, unchanged, typed, errors
):
    client = login(admin)
    response = client.post(url("rat_edit"), {"text": typed})
    assert response.status_code == 400
    field = text(response).split('<label for="id_text">')[1].split("</form>")[0]
    assert [line.split("</div>")[0] for line in field.split('<div class="error">')[1:]] == errors
    response = client.post(url("rat_edit"), {"text": typed}, headers=HTMX)
    assert response.status_code == 400 and not text(response).lstrip().startswith("<!DOCTYPE")
    unchanged()


def test_htmx_edit_redirects_on_success(login, admin):
    response = login(admin).post(url("rat_edit"), {"text": "example.org ACCEPT\nALL REJECT"}, headers=HTMX)
    assert response.status_code == 200 and response["HX-Redirect"] == f"{PAGE}?listener={IN}"
    assert entries() == [("example.org", "accept"), ("ALL", "reject")]


def test_add_edit_and_delete_entries(login, admin):
    client = login(admin)
    response = client.post(
        url("rat_entry_add"), {"recipient": "Postmaster@", "action": "accept", "order": ""}
    )
    assert response.status_code == 302
    client.post(url("rat_entry_add"), {"recipient": ".example.com", "action": "reject", "order": "1"})
    assert entries() == [(".example.com", "reject"), ("example.com", "accept"), ("postmaster@", "accept"),
                         ("ALL", "reject")]  # fmt: skip
    response = client.post(url("rat_entry_edit", "postmaster@"),
                           {"recipient": "abuse@", "action": "accept", "order": "1"})  # fmt: skip
    assert response.status_code == 302
    # ALL: the recipient and order posted are ignored (disabled), the action changes
    response = client.post(
        url("rat_entry_edit", "ALL"), {"recipient": "x.org", "action": "accept", "order": "1"}
    )
    assert response.status_code == 302
    assert entries() == [("abuse@", "accept"), (".example.com", "reject"), ("example.com", "accept"),
                         ("ALL", "accept")]  # fmt: skip
    response = client.post(url("rat_entry_delete", ".example.com"), follow=True)
    assert "Your changes have been submitted." in text(response)
    assert table_rows(text(response)) == [["1", "abuse@", "Accept"], ["2", "example.com", "Accept"],
                                          ["3", "ALL", "Accept"]]  # fmt: skip
    assert AuditEvent.objects.filter(
        detail="deleted RAT entry .example.com of listener IncomingMail"
    ).exists()
    assert 'aria-label="Delete the RAT entry ALL"' not in text(response)


def test_entry_refusals_say_why_and_store_nothing(login, admin, unchanged):
    client = login(admin)
    response = client.post(url("rat_entry_add"), {"recipient": "example.COM", "action": "reject"})
    assert response.status_code == 409
    page = text(response)
    assert (
        "The RAT of listener IncomingMail already has an entry for 'example.com'. " + NOTHING_CHANGED in page
    )
    response = client.post(
        url("rat_entry_add"), {"recipient": "example.org", "action": "accept", "order": "5"}
    )
    assert response.status_code == 409 and "The order must be from 1 to 2 (ALL stays last)" in text(response)
    response = client.post(url("rat_entry_add"), {"recipient": "not one", "action": "accept"})
    assert response.status_code == 400
    field = text(response).split('<label for="id_recipient">')[1].split("</fieldset>")[0]
    assert f"<div class=\"error\">'not one' is not a recipient entry ({FORMS})</div>" in field
    response = client.post(url("rat_entry_add"), {"recipient": "example.org", "action": "deliver"})
    assert response.status_code == 400 and "Select a valid choice." in text(response)
    response = client.post(url("rat_entry_delete", "ALL"))
    assert response.status_code == 409
    assert "The ALL entry cannot be deleted: every RAT ends with it (change its action instead)" in text(
        response
    )
    assert client.post(url("rat_entry_delete", "nope.example")).status_code == 404
    assert client.get(url("rat_entry_edit", "nope.example")).status_code == 404
    assert client.get(url("rat_entry_delete", "example.com")).status_code == 405
    unchanged()


def test_export_then_import_gives_the_same_rat(login, admin):
    stage_table(admin, "joe@example.com REJECT", "example.com ACCEPT", ".example.com ACCEPT", "ALL REJECT")
    client = login(admin)
    export = client.get(url("rat_export"))
    assert export["Content-Type"] == "text/plain; charset=utf-8"
    assert export["Content-Disposition"] == 'attachment; filename="rat-IncomingMail.txt"'
    exported = export.content.decode()
    assert exported.splitlines()[2:] == ["joe@example.com REJECT", "example.com ACCEPT", ".example.com ACCEPT",
                                         "ALL REJECT"]  # fmt: skip
    response = client.post(url("rat_import"), {"text": "example.net ACCEPT\nALL ACCEPT\n"}, follow=True)
    assert "Imported 2 entries." in text(response)
    assert entries() == [("example.net", "accept"), ("ALL", "accept")]
    upload = SimpleUploadedFile("rat.txt", exported.encode())
    response = client.post(url("rat_import"), {"text": "", "upload": upload}, follow=True)
    assert "Imported 4 entries." in text(response)
    assert client.get(url("rat_export")).content.decode() == exported


def test_import_refusals_name_the_lines_and_store_nothing(login, admin, unchanged):
    client = login(admin)
    response = client.post(url("rat_import"), {"text": "example.org\nALL REJECT\nx.org ACCEPT\n"})
    assert response.status_code == 400
    field = text(response).split('<label for="id_text">')[1].split('<label for="id_upload">')[0]
    assert "line 1: 'example.org' is not an entry: give RECIPIENT ACCEPT or RECIPIENT REJECT" in field
    upload = SimpleUploadedFile("rat.txt", b"ALL REJECT\nexample.org ACCEPT\n")
    response = client.post(url("rat_import"), {"upload": upload})
    field = text(response).split('<label for="id_upload">')[1].split("</form>")[0]
    assert "line 1: ALL must be the last entry of the RAT" in field
    assert "line 2: The last entry of the RAT must be ALL" in field
    response = client.post(url("rat_import"), {"text": "  \n"})
    assert response.status_code == 400 and "Give the RAT as text or as a file." in text(response)
    response = client.post(url("rat_import"), {"upload": SimpleUploadedFile("rat.txt", b"\xff\xfe")})
    assert response.status_code == 400 and "The file is not UTF-8 text." in text(response)
    unchanged()


def test_test_recipient_answers_which_entry_decides(login, admin):
    stage_table(admin, "joe@example.com REJECT", "example.com ACCEPT", "ALL REJECT")
    client = login(admin)
    answer = text(client.get(url("rat_test"), {"address": "Joe@Example.com"}, headers=HTMX))
    assert not answer.lstrip().startswith("<!DOCTYPE")
    assert "1. " in answer and ">joe@example.com</a>" in answer and "Reject: 550 5.7.1" in answer
    answer = text(client.get(url("rat_test"), {"address": "ann@example.com"}, headers=HTMX))
    assert "2. " in answer and "Accept: the listener takes mail for ann@example.com" in answer
    answer = text(client.get(url("rat_test"), {"address": "ann@mail.example.com"}, headers=HTMX))
    assert "3. " in answer and ">ALL</a>" in answer and "Reject" in answer
    answer = text(client.get(url("rat_test"), {"address": "not an address"}, headers=HTMX))
    assert "Give an address such as user@example.com" in answer
    page = text(client.get(url("rat_test"), {"address": "ann@example.com"}))  # without htmx: the whole page
    assert 'id="rat-entries"' in page and 'id="test-answer"' in page


def test_read_only_operator_sees_a_preview_and_nothing_is_stored(login, admin, read_only, unchanged):
    client = login(read_only)
    posts = [
        (url("rat_edit"), {"text": "example.org ACCEPT\nALL REJECT"}),
        (url("rat_import"), {"text": "example.org ACCEPT\nALL REJECT"}),
        (url("rat_entry_add"), {"recipient": "example.org", "action": "accept"}),
        (url("rat_entry_edit", "ALL"), {"action": "accept"}),
        (url("rat_entry_delete", "example.com"), {}),
    ]
    for address, data in posts:
        response = client.post(address, data)
        assert response.status_code == 200, address
        page = text(response)
        assert PREVIEWED in page and "What your submit would change" in page, address
    page = text(client.post(url("rat_entry_add"), {"recipient": "example.org", "action": "accept"}))
    assert "example.org" in page.split("What your submit would change")[1]
    response = client.post(url("rat_entry_delete", "ALL"))
    assert response.status_code == 409  # a refusal is a refusal, preview or not
    unchanged()
    assert not workflow.has_uncommitted_changes()


# --- listenerconfig edit NAME rcptaccess ----------------------------------------------------------


def test_console_print_new_edit_delete(admin):
    assert run(*RCPTACCESS, "print") == (
        "Recipient Access Table of listener IncomingMail: the first entry that covers a recipient decides\n"
        "1. example.com: Accept\n"
        "2. ALL: Reject\n",
        "",
    )
    assert run(*RCPTACCESS, "new", "Sales@Example.org", "--action", "accept") == (
        "RAT entry sales@example.org added to listener IncomingMail. Use commit to apply it.\n",
        "",
    )
    run(*RCPTACCESS, "new", ".example.com", "--action", "reject", "--order", "1")
    run(*RCPTACCESS, "edit", "sales@example.org", "--order", "1")
    assert run(*RCPTACCESS, "edit", "ALL", "--action", "accept") == (
        "RAT entry ALL of listener IncomingMail changed. Use commit to apply it.\n",
        "",
    )
    assert run(*RCPTACCESS, "delete", ".example.com") == (
        "RAT entry .example.com of listener IncomingMail deleted. Use commit to apply it.\n",
        "",
    )
    assert run(*RCPTACCESS, "print")[0].splitlines()[1:] == [
        "1. sales@example.org: Accept",
        "2. example.com: Accept",
        "3. ALL: Accept",
    ]
    assert workflow.lock_state().owner_name == "admin"
    assert AuditEvent.objects.filter(
        source="CLI", detail="added RAT entry sales@example.org to listener IncomingMail"
    ).exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (("new", "example.com", "--action", "reject"),
         "The RAT of listener IncomingMail already has an entry for 'example.com'"),
        (("new", "ALL", "--action", "accept"), "ALL is always the last entry of the RAT: change its action instead"),
        (("new", "*.example.com", "--action", "accept"), f"'*.example.com' is not a recipient entry ({FORMS})"),
        (("new", "example.org", "--action", "accept", "--order", "9"), "The order must be from 1 to 2 (ALL stays last)"),
        (("edit", "example.org", "--action", "reject"), "The RAT of listener IncomingMail has no entry for 'example.org'"),
        (("edit", "ALL", "--order", "1"), "ALL is always the last entry of the RAT: only its action can change"),
        (("delete", "ALL"), "The ALL entry cannot be deleted: every RAT ends with it (change its action instead)"),
        (("delete", "example.org"), "The RAT of listener IncomingMail has no entry for 'example.org'"),
    ],
)  # fmt: skip
def test_console_refusals_exit_1_and_change_nothing(admin, unchanged, args, message):
    assert refused(*RCPTACCESS, *args) == f"Error: {message}"
    unchanged()
    assert not workflow.has_uncommitted_changes()


@pytest.mark.parametrize(
    "args", [("print",), ("export",), ("new", "example.com", "--action", "accept"), ("delete", "example.com"),
             ("edit", "ALL", "--action", "accept"), ("import", "-")],
)  # fmt: skip
def test_console_a_private_listener_has_no_rat(admin, args, monkeypatch):
    stage_relay(admin)
    monkeypatch.setattr("sys.stdin", io.StringIO("ALL ACCEPT\n"))
    before = registry.candidate()
    assert refused("listenerconfig", "edit", "Relay", "rcptaccess", *args) == f"Error: {PRIVATE}"
    assert (
        refused("listenerconfig", "edit", "Nope", "rcptaccess", *args)
        == "Error: There is no listener named 'Nope'"
    )
    assert registry.candidate() == before


@pytest.mark.parametrize(
    "args",
    [
        ("new", "example.org"),  # --action is required
        ("new", "example.org", "--action", "deliver"),
        ("edit", "example.com"),  # nothing to change
        ("new", "example.org", "--action", "accept", "--order", "first"),
        ("clear",),
        (),
    ],
)
def test_console_usage_errors(admin, unchanged, args):
    with pytest.raises((CommandError, SystemExit)):
        run(*RCPTACCESS, *args)
    unchanged()


def test_console_settings_and_rcptaccess_are_not_mixed(admin, unchanged):
    line = refused("listenerconfig", "edit", IN, "--port", "26", "rcptaccess", "print")
    assert line == "Error: give the listener's settings or rcptaccess, not both: they are separate changes"
    unchanged()


def test_console_export_then_import(admin, tmp_path):
    run(*RCPTACCESS, "new", "postmaster@", "--action", "accept")
    run(*RCPTACCESS, "new", ".example.com", "--action", "reject")
    before = entries()
    path = tmp_path / "rat.txt"
    assert run(*RCPTACCESS, "export", str(path)) == (
        f"Exported the RAT of listener IncomingMail (4 entries) to {path}\n",
        "",
    )
    assert run(*RCPTACCESS, "export")[0] == path.read_text()
    assert path.read_text().splitlines()[2:] == [
        "example.com ACCEPT", "postmaster@ ACCEPT", ".example.com REJECT", "ALL REJECT",
    ]  # fmt: skip
    run(*RCPTACCESS, "delete", "postmaster@")
    assert run(*RCPTACCESS, "import", str(path)) == (
        "RAT of listener IncomingMail imported. Use commit to apply it.\nImported 4 entries.\n",
        "",
    )
    assert entries() == before
    assert AuditEvent.objects.filter(detail="imported the RAT of listener IncomingMail from rat.txt").exists()


def test_console_import_from_standard_input(admin, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("# ours\nexample.org ACCEPT\n\nALL REJECT\n"))
    out, _ = run(*RCPTACCESS, "import", "-")
    assert out.splitlines()[1] == "Imported 2 entries."
    assert entries() == [("example.org", "accept"), ("ALL", "reject")]


def test_console_import_errors_name_their_lines(admin, unchanged, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("example.org\nBad..Name ACCEPT\nALL REJECT\n")
    assert refused(*RCPTACCESS, "import", str(path)) == (
        "Error: The RAT cannot be imported; "
        "line 1: 'example.org' is not an entry: give RECIPIENT ACCEPT or RECIPIENT REJECT; "
        f"line 2: 'Bad..Name' is not a recipient entry ({FORMS})"
    )
    path.write_text("ALL REJECT\nexample.org ACCEPT\nexample.org REJECT\n")
    assert refused(*RCPTACCESS, "import", str(path)) == (
        "Error: The RAT cannot be imported; line 1: ALL must be the last entry of the RAT; "
        "line 3: The recipient 'example.org' is listed twice; line 3: The last entry of the RAT must be ALL"
    )
    path.write_text("# nothing\n")
    assert refused(*RCPTACCESS, "import", str(path)) == (
        "Error: The RAT of listener IncomingMail cannot be saved; "
        "The RAT needs at least its last entry, ALL ACCEPT or ALL REJECT"
    )
    assert refused(*RCPTACCESS, "import", str(tmp_path / "missing.txt")) == (
        f'Error: the file "{tmp_path / "missing.txt"}" does not exist'
    )
    unchanged()


def test_console_roles(read_only, guest, unchanged):
    out, err = run(*RCPTACCESS, "new", "example.org", "--action", "accept", "--user", "rita")
    assert out.splitlines()[0] == "Preview only (Read-Only Operator): nothing was stored."
    assert "example.org" in out and err == ""
    assert run(*RCPTACCESS, "print", "--user", "rita")[0].startswith("Recipient Access Table of listener")
    assert (
        refused(*RCPTACCESS, "print", "--user", "gus")
        == "Error: The Guest role may not view the configuration."
    )
    assert refused(*RCPTACCESS, "delete", "example.com", "--user", "gus") == (
        "Error: The Guest role may not fill and submit forms to preview a change."
    )
    unchanged()
    assert not workflow.has_uncommitted_changes()


# --- the gateway: a real SMTP client on loopback ---------------------------------------------------


def rcpt(client: smtplib.SMTP, address: str) -> tuple[int, str]:
    code, reply = client.rcpt(address)
    return code, reply.decode()


REJECTED = (550, "5.7.1 Recipient address rejected: this gateway takes no mail for it")


def test_the_gateway_refuses_recipients_the_rat_rejects(gateway):
    """The shipped RAT: example.com accepted, ALL rejected (its subdomains too)."""
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.ehlo()
        assert client.mail("sender@client.test")[0] == 250
        assert rcpt(client, "rcpt@example.com") == (250, "2.1.5 Recipient ok")
        assert rcpt(client, "rcpt@example.net") == REJECTED
        assert rcpt(client, "rcpt@esa.example.com") == REJECTED
        code, reply = client.data(message())
        assert code == 250
    log = gateway.log.closed(icid)
    assert f"ICID {icid} RID 1 reject RAT 'ALL' rcpt <rcpt@example.net>" in log
    assert f"ICID {icid} RID 1 reject RAT 'ALL' rcpt <rcpt@esa.example.com>" in log
    envelope, _ = spooled(mid_of(reply))
    assert envelope["rcpt_tos"] == ["rcpt@example.com"]


def test_a_committed_rat_change_reaches_the_gateway(gateway):
    gateway.stage("rat", lambda: rat.add_entry(CLUSTER, IN, "partner.example.org", "accept"))
    gateway.stage("rat", lambda: rat.add_entry(CLUSTER, IN, "nobody@example.com", "reject", order=1))
    with gateway.smtp() as client:  # staged, not committed: the running RAT still decides
        client.ehlo()
        client.mail("sender@client.test")
        assert rcpt(client, "ann@partner.example.org") == REJECTED
    assert gateway.commit() == []
    icid = gateway.next_icid()
    with gateway.smtp() as client:
        client.ehlo()
        client.mail("sender@client.test")
        assert rcpt(client, "ann@partner.example.org")[0] == 250
        assert rcpt(client, "nobody@example.com") == REJECTED
        assert rcpt(client, "somebody@example.com")[0] == 250
    assert (
        f"ICID {icid} RID 1 reject RAT 'nobody@example.com' rcpt <nobody@example.com>"
        in gateway.log.closed(icid)
    )


def test_a_relay_policy_sender_skips_the_rat(gateway):
    """127.0.0.1 in a sender group whose policy says Relay: any recipient, as a private listener's
    RELAYLIST hosts; the RAT still says ALL Reject."""

    def relay_loopback():
        hat.save_policy(CLUSTER, IN, "RELAYED", create=True, connection_behavior="relay")
        hat.save_group(CLUSTER, IN, "RELAYLIST", policy_name="RELAYED", order=1, create=True)
        hat.add_senders(CLUSTER, IN, "RELAYLIST", [LOOPBACK])

    gateway.stage("relay for loopback", relay_loopback)
    assert gateway.commit() == []
    assert entries()[-1] == ("ALL", "reject")
    with gateway.smtp() as client:
        client.ehlo()
        client.mail("sender@client.test")
        assert rcpt(client, "anyone@example.net")[0] == 250
        assert rcpt(client, "rcpt@example.com")[0] == 250
        assert client.data(message())[0] == 250

"""Mail Policies > Address Lists: entry forms, matches(), ``<address_lists>``, the page and ``addresslistconfig``."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from appliance import workflow
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render
from listeners import address_lists
from tests.console import refused, run
from tests.listener_fixtures import unchanged_fixture  # noqa: F401 (fixture)

SUBMITTED = "Your changes have been submitted. Commit them to make them take effect."
ENTRIES = ["ceo@example.com", "partner.example.org", "@.example.net", "postmaster@"]


def lists() -> list[dict]:
    return registry.read("address_lists")


def stage(user, name="Mandatory", entries=ENTRIES, description=""):
    workflow.submit(user, "add", lambda: address_lists.create(name, entries, description))


def page(response) -> str:
    return html.unescape(response.content.decode())


# --- entries and matching ---------------------------------------------------------------


@pytest.mark.parametrize(
    "address,expected",
    [
        ("ceo@example.com", True),
        ("CEO@Example.COM", True),
        ("<ceo@example.com>", True),
        ("cfo@example.com", False),
        ("anyone@partner.example.org", True),
        ("anyone@sub.partner.example.org", False),  # a domain is not its subdomains
        ("anyone@mail.example.net", True),
        ("anyone@a.b.example.net", True),
        ("anyone@example.net", False),  # @.example.net is the subdomains only
        ("anyone@notexample.net", False),
        ("postmaster@anywhere.test", True),
        ("postmaster2@anywhere.test", False),
        ("", False),
        ("no-at-sign", False),
    ],
)
def test_matches_each_entry_form(address, expected):
    config = {"address_lists": [{"address_list_name": "L", "description": "", "address": ENTRIES}]}
    assert address_lists.matches("L", address, config) is expected


def test_matches_reads_the_running_configuration(admin):
    stage(admin)
    with pytest.raises(address_lists.AddressListNotFound, match="There is no address list named 'Mandatory'"):
        address_lists.matches("Mandatory", "ceo@example.com")  # not committed yet
    workflow.commit(admin)
    assert address_lists.matches("Mandatory", "ceo@example.com")
    assert not address_lists.matches("Mandatory", "someone@example.com")


@pytest.mark.parametrize(
    "entries,message",
    [
        (["ok@example.com", "@example.com"], "The entry '@example.com' is not an address list entry"),
        (["bad entry"], "The entry 'bad entry' is not an address list entry"),
        (["a@b@c.example"], "The entry 'a@b@c.example' is not an address list entry"),
        (["@.x"], "The entry '@.x' is not an address list entry"),
        (["example.com", "EXAMPLE.com"], "The entry 'EXAMPLE.com' is listed twice"),
        (["", "  "], "An address list needs at least one entry"),
    ],
)
def test_bad_entries_are_refused_naming_the_entry(admin, unchanged, entries, message):
    with pytest.raises(workflow.ChangeRefused, match=message):
        stage(admin, "Bad", entries)
    unchanged()


def test_names_are_checked_and_unique(admin):
    stage(admin)
    with pytest.raises(workflow.ChangeRefused, match="An address list named 'Mandatory' already exists"):
        stage(admin)
    with pytest.raises(workflow.ChangeRefused, match="The address list name 'a/b' is not a valid name"):
        stage(admin, "a/b")
    assert [item["address_list_name"] for item in lists()] == ["Mandatory"]


# --- the <address_lists> section ----------------------------------------------------------


def test_the_section_round_trips(admin):
    stage(admin, description="Senders that must use TLS")
    stage(admin, "Other", ["example.com"])
    config = {"address_lists": registry.candidate()["address_lists"]}
    document = render(config, SecretMode.PLAIN)
    assert (
        "<address_list>\n      <address_list_name>Mandatory</address_list_name>\n"
        "      <description>Senders that must use TLS</description>\n"
        "      <address>ceo@example.com</address>\n" in document
    )
    assert "<address_list_name>Other</address_list_name>\n      <address>example.com</address>" in document
    assert parse(document.encode("latin-1")).config == config
    assert lists()[0] == {
        "address_list_name": "Mandatory",
        "description": "Senders that must use TLS",
        "address": ENTRIES,
    }


def test_a_partial_document_replaces_only_the_address_lists(admin):
    stage(admin)
    listeners_before = registry.read("listeners")
    document = parse(
        b"<config><address_lists><address_list><address_list_name>New</address_list_name>"
        b"<address>user@</address></address_list></address_lists></config>"
    )
    workflow.load_document(admin, document, "loaded")
    assert lists() == [{"address_list_name": "New", "description": "", "address": ["user@"]}]
    assert registry.read("listeners") == listeners_before
    workflow.load_document(admin, parse(b"<config><address_lists/></config>"), "loaded")
    assert lists() == []


@pytest.mark.parametrize(
    "body,problem",
    [
        (
            "<address_list_name>L</address_list_name><address>bad entry</address>",
            "line 1: <address> 'bad entry' is not an address list entry "
            "(user@example.com, example.com, @.example.com or user@)",
        ),
        (
            "<address_list_name>L</address_list_name>",
            "line 1: <address_list> lacks <address>: an address list needs at least one entry",
        ),
        (
            "<address_list_name>L</address_list_name><address>a.example</address><address>A.example</address>",
            "line 1: <address> The entry 'A.example' is listed twice",
        ),
        ("<address>a.example</address>", "line 1: <address_list> lacks <address_list_name>"),
    ],
)
def test_bad_files_are_refused_with_the_line_and_element(admin, body, problem):
    with pytest.raises(ConfigFileError) as error:
        parse(f"<config><address_lists><address_list>{body}</address_list></address_lists></config>".encode())
    assert error.value.problems == [problem]


# --- the page ---------------------------------------------------------------------------


def test_the_page_lists_adds_edits_and_deletes(login, admin):
    client = login(admin)
    text = page(client.get(reverse("listeners:address_lists")))
    assert "Address Lists</a>" in text and "No address lists." in text and "Add Address List..." in text
    data = {"name": "Mandatory", "description": "TLS senders", "entries": "\r\n".join(ENTRIES) + "\r\n\r\n"}
    response = client.post(reverse("listeners:address_list_add"), data, follow=True)
    assert response.redirect_chain == [(reverse("listeners:address_lists"), 302)]
    assert SUBMITTED in [str(m) for m in response.context["messages"]]
    assert "ceo@example.com, partner.example.org, @.example.net, postmaster@" in page(response)
    edit = reverse("listeners:address_list_edit", args=["Mandatory"])
    assert "ceo@example.com\npartner.example.org" in page(client.get(edit))
    client.post(edit, {"name": "Renamed", "description": "", "entries": "example.com"})
    assert lists() == [{"address_list_name": "Renamed", "description": "", "address": ["example.com"]}]
    client.post(reverse("listeners:address_list_delete", args=["Renamed"]))
    assert lists() == []
    assert client.post(reverse("listeners:address_list_delete", args=["Renamed"])).status_code == 404


def test_bad_input_on_the_page_names_the_entry_and_changes_nothing(login, admin, unchanged):
    client = login(admin)
    data = {"name": "Mandatory", "entries": "ok@example.com\nnot valid\n"}
    response = client.post(reverse("listeners:address_list_add"), data, headers={"HX-Request": "true"})
    assert response.status_code == 409
    assert 'hx-target="#address-list-form"' in page(response) and "<html" not in page(response)
    assert "The entry 'not valid' is not an address list entry" in page(response)
    response = client.post(reverse("listeners:address_list_add"), {"name": "x/y", "entries": ""})
    assert response.status_code == 400
    assert "'x/y' is not a valid name" in page(response)
    assert "An address list needs at least one entry" in page(response)
    unchanged()


def test_read_only_sees_a_preview_and_guest_is_refused(login, read_only, guest, unchanged):
    data = {"name": "Mandatory", "entries": "example.com"}
    response = login(read_only).post(reverse("listeners:address_list_add"), data)
    assert response.status_code == 200
    assert "Nothing was stored." in page(response) and "address list 'Mandatory'" in page(response)
    unchanged()
    client = login(guest)
    assert client.get(reverse("listeners:address_lists")).status_code == 403
    assert client.post(reverse("listeners:address_list_add"), data).status_code == 403
    unchanged()


# --- addresslistconfig ---------------------------------------------------------------------


def test_addresslistconfig_new_list_edit_delete(admin):
    assert run("addresslistconfig", "new", "Mandatory", "--address", "example.com", "--address", "ceo@") == (
        "Address list Mandatory created. Use commit to apply it.\n",
        "",
    )
    assert run("addresslistconfig", "list") == ("Mandatory\t-\texample.com, ceo@\n", "")
    run("addresslistconfig", "edit", "Mandatory", "--description", "TLS senders", "--new-name", "TLS")
    assert run("addresslistconfig", "list") == ("TLS\tTLS senders\texample.com, ceo@\n", "")
    run("addresslistconfig", "edit", "TLS", "--address", "@.example.org")
    assert lists() == [
        {"address_list_name": "TLS", "description": "TLS senders", "address": ["@.example.org"]}
    ]
    assert run("addresslistconfig", "delete", "TLS") == (
        "Address list TLS deleted. Use commit to apply it.\n",
        "",
    )
    assert lists() == []


def test_addresslistconfig_refusals_change_nothing(admin, unchanged):
    assert refused("addresslistconfig", "new", "L", "--address", "example.com", "--address", "x y") == (
        "Error: The entry 'x y' is not an address list entry (user@example.com, example.com, @.example.com or user@)"
    )
    assert refused("addresslistconfig", "delete", "Nope") == "Error: There is no address list named 'Nope'"
    unchanged()


def test_a_long_list_changes_on_uncommitted_changes_as_what_left_and_what_joined(admin):
    many = [f"user{number}@example.com" for number in range(30)]
    stage(admin, entries=many)
    workflow.commit(admin, "long list")
    edited = [*many[1:], "new@example.com"]
    workflow.submit(admin, "edit", lambda: address_lists.edit("Mandatory", entries=edited))
    [section] = workflow.pending_changes()
    [change] = section.objects
    assert [(f.label, f.before, f.after) for f in change.fields] == [
        ("Addresses", "30 entries, less user0@example.com", "30 entries, with new@example.com")
    ]

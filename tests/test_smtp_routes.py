"""Network > SMTP Routes: the ``<smtp_routes>`` section, route_for, the page and ``smtproutes``."""

from __future__ import annotations

import html

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appliance import workflow
from appliance.config.sections import registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render
from destinations import routes
from tests.console import refused, run
from tests.listener_fixtures import unchanged_fixture  # noqa: F401 (fixture)

SUBMITTED = "Your changes have been submitted. Commit them to make them take effect."


def table() -> list[dict]:
    return registry.read("smtp_routes")


def hop(host, priority=None) -> dict:
    return {"host": host, "priority": priority}


def stage(user, domain, *hosts):
    workflow.submit(user, "add", lambda: routes.create(domain, list(hosts)))


def page(response) -> str:
    return html.unescape(response.content.decode())


# --- the <smtp_routes> section -----------------------------------------------------------


def test_no_routes_at_first(admin):
    assert table() == []
    assert workflow.running_config()["smtp_routes"] == []
    assert routes.route_for("example.com") is None


def test_the_section_round_trips(admin):
    stage(admin, "example.com", hop("mx1.example.net:2525", 10), hop("192.0.2.1", 5), hop("USEDNS"))
    stage(admin, ".example.org", hop("[2001:db8::1]:25"))
    stage(admin, "all", hop("/dev/null"))
    config = {"smtp_routes": registry.candidate()["smtp_routes"]}
    document = render(config, SecretMode.PLAIN)
    assert (
        "<smtp_route>\n      <domain>example.com</domain>\n"
        '      <destination_host priority="10">mx1.example.net:2525</destination_host>\n'
        '      <destination_host priority="5">192.0.2.1</destination_host>\n'
        "      <destination_host>USEDNS</destination_host>\n"
        "    </smtp_route>" in document
    )
    assert "<domain>ALL</domain>\n      <destination_host>/dev/null</destination_host>" in document
    assert parse(document.encode("latin-1")).config == config
    assert [item["domain"] for item in table()] == [".example.org", "ALL", "example.com"]


def test_the_section_stands_right_after_dns():
    tags = [section.tag for section in registry.ordered()]
    assert tags[tags.index("dns") + 1] == "smtp_routes"


def test_a_partial_document_replaces_only_the_routes(admin):
    stage(admin, "old.example.com", hop("mx.old.example"))
    listeners_before = registry.read("listeners")
    dns_before = registry.read("dns")
    document = parse(
        b"<config><smtp_routes><smtp_route><domain>.example.com</domain>"
        b'<destination_host priority="1">127.0.0.1:2525</destination_host>'
        b"<destination_host>USEDNS</destination_host>"
        b"</smtp_route></smtp_routes></config>"
    )
    workflow.load_document(admin, document, "loaded")
    assert table() == [
        {"domain": ".example.com", "destination_host": [hop("127.0.0.1:2525", 1), hop("USEDNS")]}
    ]
    assert registry.read("listeners") == listeners_before
    assert registry.read("dns") == dns_before
    workflow.load_document(admin, parse(b"<config><smtp_routes/></config>"), "loaded")
    assert table() == []


@pytest.mark.parametrize(
    "body,problem",
    [
        (
            "<domain>Example.com</domain><destination_host>mx</destination_host>",
            "line 1: <domain> 'Example.com' must be written as 'example.com'",
        ),
        (
            "<domain>bad_domain</domain><destination_host>mx</destination_host>",
            "line 1: <domain> 'bad_domain' is not a domain: give " + routes.DOMAIN_SYNTAX,
        ),
        (
            "<domain>example.com</domain><destination_host>mx:99999</destination_host>",
            "line 1: <destination_host> 'mx:99999': the port must be a number between 1 and 65535",
        ),
        (
            '<domain>example.com</domain><destination_host priority="70000">mx</destination_host>',
            "line 1: <destination_host priority> must be between 0 and 65535, not 70000",
        ),
        (
            "<domain>example.com</domain>",
            "line 1: <smtp_route> Give at least one destination host (or USEDNS, or /dev/null)",
        ),
        (
            "<domain>example.com</domain><destination_host>/dev/null</destination_host>"
            "<destination_host>mx</destination_host>",
            "line 1: <smtp_route> /dev/null drops the mail: it cannot be combined with other destination hosts",
        ),
    ],
)
def test_bad_files_are_refused_with_the_line_and_element(admin, body, problem):
    with pytest.raises(ConfigFileError) as error:
        parse(f"<config><smtp_routes><smtp_route>{body}</smtp_route></smtp_routes></config>".encode())
    assert error.value.problems == [problem]


def test_a_file_with_two_default_routes_is_refused(admin):
    one = "<smtp_route><domain>ALL</domain><destination_host>mx</destination_host></smtp_route>"
    with pytest.raises(ConfigFileError, match="repeats the name 'ALL'"):
        parse(f"<config><smtp_routes>{one}\n{one}</smtp_routes></config>".encode())


# --- route_for ---------------------------------------------------------------------------------


CONFIG = {
    "smtp_routes": [
        {"domain": "mail.example.com", "destination_host": [hop("b.exact", 20), hop("a.exact", 10)]},
        {"domain": ".example.com", "destination_host": [hop("sub")]},
        {"domain": ".deep.example.com", "destination_host": [hop("deep:2525")]},
        {"domain": "ALL", "destination_host": [hop("smarthost", 5), hop("USEDNS"), hop("late", 5)]},
    ]
}


@pytest.mark.parametrize(
    "domain,hosts",
    [
        ("mail.example.com", ["a.exact", "b.exact"]),  # exact wins, priority order
        ("user@Mail.Example.COM", ["a.exact", "b.exact"]),
        ("x.mail.example.com", ["sub"]),  # exact names only the domain itself
        ("a.b.deep.example.com", ["deep:2525"]),  # longest .partial
        ("deep.example.com", ["sub"]),  # .deep.example.com covers only hosts below it
        ("example.com", ["USEDNS", "smarthost", "late"]),  # .example.com does not cover example.com
        ("example.org", ["USEDNS", "smarthost", "late"]),  # ALL; no priority counts as 0
    ],
)
def test_route_for_precedence(domain, hosts):
    assert routes.route_for(domain, CONFIG) == hosts


def test_without_a_default_route_mail_goes_by_mx():
    config = {"smtp_routes": CONFIG["smtp_routes"][:3]}
    assert routes.route_for("example.org", config) is None
    assert routes.route_for("example.org", {}) is None
    with pytest.raises(ValueError, match="is not a domain mail is sent to"):
        routes.route_for(".example.com", config)


def test_route_for_reads_the_running_configuration(admin):
    stage(admin, "example.com", hop("127.0.0.1:2525"))
    assert routes.route_for("example.com") is None  # not committed yet
    workflow.commit(admin)
    assert routes.route_for("example.com") == ["127.0.0.1:2525"]


def test_candidate_lookup_is_one_query_whatever_the_table(admin):
    workflow.submit(
        admin,
        "many",
        lambda: (
            [routes.create(f"d{i}.example.com", [hop("mx")]) for i in range(200)]
            + [routes.create(".example.com", [hop("sub")])]
        ),
    )
    with CaptureQueriesContext(connection) as queries:
        route = routes.candidate_route("user@x.d7.example.com")
    assert route.domain == ".example.com" and len(queries) == 1


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain,hosts,message",
    [
        ("bad domain", [hop("mx")], "'bad domain' is not a domain"),
        ("EXAMPLE.com", [hop("mx")], "The value example.com is already in the routing table."),
        ("all", [hop("mx")], "There is already a default route set."),
        ("new.example.com", [], r"Give at least one destination host \(or USEDNS, or /dev/null\)"),
        ("new.example.com", [hop("mx:0")], "'mx:0': the port must be a number between 1 and 65535"),
        ("new.example.com", [hop("bad host")], "'bad host' is not a destination host"),
        ("new.example.com", [hop("2001:db8::1")], "put an IPv6 address in brackets"),
        ("new.example.com", [hop("mx", 65536)], "'mx': the priority must be a number between 0 and 65535"),
        (
            "new.example.com",
            [hop("/dev/null"), hop("USEDNS")],
            "/dev/null drops the mail: it cannot be combined with other destination hosts",
        ),
        ("new.example.com", [hop("mx"), hop("mx", 3)], "The destination host mx is listed twice"),
    ],
)
def test_bad_routes_are_refused_and_nothing_changes(admin, domain, hosts, message):
    stage(admin, "example.com", hop("mx"))
    stage(admin, "ALL", hop("USEDNS"))
    before = table()
    with pytest.raises(workflow.ChangeRefused, match=message):
        workflow.submit(admin, "add", lambda: routes.create(domain, hosts))
    assert table() == before


def test_edit_refusals_change_nothing(admin):
    stage(admin, "example.com", hop("mx"))
    before = table()
    with pytest.raises(workflow.ChangeRefused, match="There is no SMTP route for example.org"):
        workflow.submit(admin, "edit", lambda: routes.edit("example.org", [hop("mx")]))
    with pytest.raises(workflow.ChangeRefused, match="Give at least one destination host"):
        workflow.submit(admin, "edit", lambda: routes.edit("example.com", []))
    assert table() == before


# --- the page ------------------------------------------------------------------------------------


def test_the_page_lists_adds_edits_and_deletes(login, admin):
    client = login(admin)
    text = page(client.get(reverse("destinations:smtp_routes")))
    assert "SMTP Routes</a>" in text and "No SMTP routes" in text and "Add Route..." in text
    data = {"domain": "Example.com", "hosts": "mx1.example.net:2525 10\n\n192.0.2.1\nUSEDNS 20\n"}
    response = client.post(reverse("destinations:smtp_route_add"), data, follow=True)
    assert response.redirect_chain == [(reverse("destinations:smtp_routes"), 302)]
    assert SUBMITTED in [str(m) for m in response.context["messages"]]
    assert "mx1.example.net:2525/pri=10, 192.0.2.1, USEDNS/pri=20" in page(response)
    edit = reverse("destinations:smtp_route_edit", args=["example.com"])
    assert "mx1.example.net:2525 10\n192.0.2.1\nUSEDNS 20</textarea>" in page(client.get(edit))
    client.post(edit, {"hosts": "/dev/null"})
    assert table() == [{"domain": "example.com", "destination_host": [hop("/dev/null")]}]
    client.post(reverse("destinations:smtp_route_delete", args=["example.com"]))
    assert table() == []
    response = client.post(reverse("destinations:smtp_route_delete", args=["example.com"]))
    assert response.status_code == 404


def test_bad_input_on_the_page_is_refused_with_a_message(login, admin, unchanged):
    client = login(admin)
    response = client.post(
        reverse("destinations:smtp_route_add"), {"domain": "a_b", "hosts": "mx:x\nmx 1 2\nok 99999"}
    )
    assert response.status_code == 400
    text = page(response)
    assert "'a_b' is not a domain" in text
    assert "'mx:x': the port must be a number between 1 and 65535" in text
    assert "'mx 1 2' is not a destination host" in text
    assert "'ok 99999': the priority must be a number between 0 and 65535" in text
    unchanged()
    stage(admin, "ALL", hop("USEDNS"))
    response = client.post(reverse("destinations:smtp_route_add"), {"domain": "all", "hosts": "mx"})
    assert response.status_code == 409
    assert "There is already a default route set. Nothing was changed." in page(response)


def test_read_only_sees_a_preview_and_guest_is_refused(login, read_only, guest, unchanged):
    data = {"domain": "example.com", "hosts": "mx"}
    response = login(read_only).post(reverse("destinations:smtp_route_add"), data)
    assert response.status_code == 200 and "Nothing was stored." in page(response)
    unchanged()
    client = login(guest)
    assert client.get(reverse("destinations:smtp_routes")).status_code == 403
    assert client.post(reverse("destinations:smtp_route_add"), data).status_code == 403
    unchanged()


# --- smtproutes -------------------------------------------------------------------------------------


def test_smtproutes_new_list_edit_lookup_delete(admin):
    new = ("smtproutes", "new", ".example.com", "--host", "mx2:2525/20", "--host", "mx1/pri=10")
    assert run(*new) == ("SMTP route .example.com added. Use commit to apply it.\n", "")
    run("smtproutes", "new", "ALL", "--host", "/dev/null")
    assert run("smtproutes", "list") == (".example.com\tmx2:2525/pri=20, mx1/pri=10\nALL\t/dev/null\n", "")
    assert run("smtproutes", "lookup", "user@a.example.com") == (
        "user@a.example.com: route .example.com -> mx1, mx2:2525\n",
        "",
    )
    assert run("smtproutes", "lookup", "example.org")[0] == "example.org: route ALL -> /dev/null\n"
    assert run("smtproutes", "edit", ".example.com", "--host", "USEDNS") == (
        "SMTP route .example.com changed. Use commit to apply it.\n",
        "",
    )
    assert table()[0] == {"domain": ".example.com", "destination_host": [hop("USEDNS")]}
    run("smtproutes", "delete", "ALL")
    assert run("smtproutes", "lookup", "example.org")[0] == "example.org: no SMTP route; delivery by MX\n"


def test_smtproutes_refusals_change_nothing(admin):
    stage(admin, "example.com", hop("mx"))
    unchanged_after_stage = table()
    assert refused("smtproutes", "new", "example.com", "--host", "mx") == (
        "Error: The value example.com is already in the routing table."
    )
    assert refused("smtproutes", "new", "example.org", "--host", "mx:70000") == (
        "Error: 'mx:70000': the port must be a number between 1 and 65535"
    )
    assert refused("smtproutes", "new", "example.org", "--host", "/dev/null", "--host", "mx") == (
        "Error: /dev/null drops the mail: it cannot be combined with other destination hosts"
    )
    assert refused("smtproutes", "delete", "example.org") == "Error: There is no SMTP route for example.org"
    assert table() == unchanged_after_stage

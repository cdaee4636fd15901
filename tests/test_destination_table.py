"""Mail Policies > Destination Controls, the table: the page (search, sort, pages, Add/Edit/Delete, lookup),
Import Table / Export Table as text, and 10,000 entries."""

from __future__ import annotations

import html
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appliance import workflow
from appliance.config.levels import CLUSTER
from destinations import entries, store
from destinations.entries import Entry
from destinations.models import Destination

PAGE = reverse("destinations:destination_controls")
ADD = reverse("destinations:destination_add")
TABLE = """\
Default tls=required ip_sort_pref=ipv4_preferred max_host_concurrency=100 max_messages_per_connection=20 limits_apply_to=mx_ip
example.com tls=required_verify max_host_concurrency=20 max_recipients_per_minute=180
.example.com tls=preferred_verify ip_sort_pref=ipv6_required
192.0.2.1 tls=none limits_apply_to=domain
2001:db8::1
"""


def edit_url(name: str) -> str:
    return reverse("destinations:destination_entry", args=[name])


def form(**values) -> dict:
    return {"new_name": "", "table_tls": "default", **values}


def import_text(admin, text: str):
    return workflow.submit(admin, "import", lambda: store.import_destinations(CLUSTER, text))


def names() -> list[str]:
    return [item["destination_name"] for item in entries.read_items(CLUSTER)]


def bulk(count: int) -> None:
    """``count`` entries straight into the candidate rows (test data, not a change)."""
    entries.default_row(CLUSTER)
    Destination.objects.at(CLUSTER).bulk_create(
        Destination(name=f"d{number:05d}.example.com", tls="required", max_connections=number % 1000 + 1)
        for number in range(count)
    )


# --- Import Table / Export Table ---------------------------------------------------------


def test_export_then_import_gives_the_same_table(admin):
    outcome = import_text(admin, TABLE)
    assert outcome.notes == ["Imported 5 entries, the Default entry included."]
    exported = store.export_destinations(CLUSTER)
    assert exported.splitlines()[3:] == [
        "Default tls=required ip_sort_pref=ipv4_preferred max_host_concurrency=100 "
        "max_messages_per_connection=20 limits_apply_to=mx_ip",
        ".example.com tls=preferred_verify ip_sort_pref=ipv6_required",
        "192.0.2.1 tls=none limits_apply_to=domain",
        "2001:db8::1 tls=default",
        "example.com tls=required_verify max_host_concurrency=20 max_recipients_per_minute=180",
    ]
    before = entries.read_items(CLUSTER)
    workflow.submit(admin, "wipe", lambda: entries.replace_table(CLUSTER, []))
    import_text(admin, exported)
    assert entries.read_items(CLUSTER) == before
    assert store.export_destinations(CLUSTER) == exported


def test_a_file_without_default_keeps_the_default_entry(admin):
    import_text(admin, TABLE)
    outcome = import_text(admin, "# only one\nnew.example tls=required\n")
    assert outcome.notes == [
        "Imported 2 entries, the Default entry included.",
        "The file has no Default line: the Default entry keeps its settings.",
    ]
    assert names() == ["Default", "new.example"]
    assert Destination.objects.at(CLUSTER).get(name="Default").max_connections == 100


def test_a_bad_line_refuses_the_whole_import_by_number(admin):
    import_text(admin, TABLE)
    workflow.commit(admin)
    before = entries.read_items(CLUSTER)
    bad = (
        "good.example tls=required\n"
        "exa_mple.com tls=none\n"
        "\n"
        "also.example tls=sometimes\n"
        "big.example max_host_concurrency=5000\n"
        "Good.Example\n"
        "Default tls=default\n"
        "x.example color=blue\n"
        "y.example tls=none tls=required\n"
    )
    with pytest.raises(workflow.ChangeRefused) as refusal:
        import_text(admin, bad)
    assert str(refusal.value) == "The destination table cannot be imported"
    assert refusal.value.problems == [
        "line 2: 'exa_mple.com' is not a destination: give a domain (example.com), a subdomain form for every host "
        "below a domain (.example.com), or an IPv4 or IPv6 address (192.0.2.1, 2001:db8::1)",
        "line 4: tls must be one of default, none, preferred, required, preferred_verify, required_verify, "
        "not 'sometimes'",
        "line 5: max_host_concurrency must be a whole number from 1 to 1000 or default, not '5000'",
        "line 6: good.example is listed twice (first on line 1)",
        "line 7: The Default entry's TLS Support cannot be Default: it is the setting the other entries' "
        "Default refers to; choose None, Preferred, Required, Preferred - Verify or Required - Verify",
        "line 8: 'color=blue' is not a setting=value pair (settings: tls, ip_sort_pref, max_host_concurrency, "
        "max_messages_per_connection, max_recipients_per_minute, limits_apply_to)",
        "line 9: tls is given twice",
    ]
    assert entries.read_items(CLUSTER) == before
    assert not workflow.has_uncommitted_changes()


def test_a_table_of_10000_lines_imports_in_one_step_and_commits(admin):
    lines = [f"d{number:05d}.example.com tls=required max_host_concurrency=10" for number in range(10_000)]
    outcome = import_text(admin, "\n".join(lines))
    assert outcome.notes[0] == "Imported 10,001 entries, the Default entry included."
    assert Destination.objects.at(CLUSTER).count() == 10_001
    assert workflow.commit(admin) is not None
    assert len(workflow.running_config()["destination_controls"][0]["destination"]) == 10_001


def test_import_and_export_pages(login, admin):
    client = login(admin)
    page = client.get(reverse("destinations:destination_import")).content.decode()
    assert 'enctype="multipart/form-data"' in page and "Destination table file" in page
    upload = SimpleUploadedFile("table.txt", TABLE.encode())
    response = client.post(reverse("destinations:destination_import"), {"table": upload}, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert "Imported 5 entries, the Default entry included." in response.content.decode()
    export = client.get(reverse("destinations:destination_export"))
    assert export["Content-Disposition"] == 'attachment; filename="destination-controls.txt"'
    assert export.content.decode() == store.export_destinations(CLUSTER)
    bad = SimpleUploadedFile("bad.txt", b"ok.example\nbad_name!\n")
    response = client.post(reverse("destinations:destination_import"), {"table": bad})
    page = response.content.decode()
    assert response.status_code == 409
    assert "The destination table cannot be imported. Nothing was changed." in page
    assert "line 2: &#x27;bad_name!&#x27; is not a destination" in page


def test_import_of_10000_lines_through_the_page(login, admin):
    text = "\n".join(f"d{number:05d}.example.com tls=preferred_verify" for number in range(10_000))
    upload = SimpleUploadedFile("big.txt", text.encode())
    response = login(admin).post(reverse("destinations:destination_import"), {"table": upload})
    assert response.status_code == 302
    assert Destination.objects.at(CLUSTER).filter(tls="preferred_verify").count() == 10_000


def test_destconfig_import_and_export(admin, tmp_path):
    source = tmp_path / "table.txt"
    source.write_text(TABLE)
    out = io.StringIO()
    call_command("destconfig", "import", str(source), stdout=out)
    assert out.getvalue() == (
        "Destination table staged. Use commit to apply it.\nImported 5 entries, the Default entry included.\n"
    )
    target = tmp_path / "out.txt"
    out = io.StringIO()
    call_command("destconfig", "export", str(target), stdout=out)
    assert out.getvalue() == f"Exported 5 entries to {target}\n"
    assert target.read_text() == store.export_destinations(CLUSTER)
    err = io.StringIO()
    source.write_text("ok.example\n.\n")
    with pytest.raises(SystemExit) as exit:
        call_command("destconfig", "import", str(source), stderr=err)
    assert exit.value.code == 1
    assert err.getvalue().startswith("Error: The destination table cannot be imported; line 2: '.' is not a")


# --- the page --------------------------------------------------------------------------------


def test_the_page_lists_the_default_entry_and_the_table(login, admin):
    import_text(admin, TABLE)
    page = login(admin).get(PAGE).content.decode()
    for text in (
        "Edit Global Settings...",
        "Add Destination...",
        "Import Table...",
        "Export Table...",
        "Concurrent Connections",
        "Messages per Connection",
        "Recipients per Minute",
        "[192.0.2.1]",
        "[2001:db8::1]",
        "Required - Verify",
    ):
        assert text in page, text
    assert 'the ESA ships "No", and this appliance\n    chooses opportunistic TLS on purpose' in page
    assert 'name="name" value="Default"' not in page  # no box to delete the Default entry
    assert "Edit Destination: [2001:db8::1]" in login(admin).get(edit_url("2001:db8::1")).content.decode()
    assert "[192.0.2.1]" in login(admin).get(PAGE, {"q": "[192.0.2.1]"}).content.decode()
    assert page.index(">Default</a>") < page.index(">.example.com</a>")


def test_search_sort_and_pages(login, admin):
    bulk(120)
    client = login(admin)
    partial = client.get(PAGE, {"q": "D00042"}, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in partial and "d00042.example.com" in partial and "d00043" not in partial
    assert ">Default</a>" in partial  # the Default entry is always shown
    first = client.get(PAGE).content.decode()
    assert "Page 1 of 3" in first and "d00049.example.com" in first and "d00050.example.com" not in first
    assert "120 entries besides Default" in first
    third = client.get(PAGE, {"page": 3}).content.decode()
    assert "d00100.example.com" in third and "d00119.example.com" in third
    by_connections = client.get(PAGE, {"sort": "-max_connections"}).content.decode()
    assert by_connections.index("d00119.example.com") < by_connections.index("d00118.example.com")
    assert "Concurrent Connections ▼" in by_connections
    assert client.get(PAGE, {"q": "nothing-here"}).content.decode().count("No destination matches") == 1


def test_the_list_page_with_10000_entries_takes_few_queries(login, admin):
    bulk(10_000)
    client = login(admin)
    client.get(PAGE)  # the running configuration, parsed once per process
    for params in ({}, {"page": 150, "sort": "-tls"}, {"q": "d09999"}):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(PAGE, params)
        assert response.status_code == 200
        assert len(queries) < 20, [query["sql"] for query in queries]
    page = response.content.decode()
    assert "d09999.example.com" in page and "d09998.example.com" not in page
    assert "Page 1 of 200" in client.get(PAGE).content.decode()


def test_add_edit_and_delete_through_the_page(login, admin):
    client = login(admin)
    form_page = html.unescape(client.get(ADD).content.decode())  # the meanings are the form's text
    for meaning in (
        "TLS is not negotiated for outgoing connections from the interface to the MTA for the domain.",
        "the SMTP transaction will continue “in the clear” (not encrypted)",
        "If the negotiation fails, no email is sent through the connection: the message stays in the queue.",
        "TLS is negotiated, but the certificate is not verified: the mail is still delivered via an "
        "encrypted session. No TLS connection is made: the message is delivered in plain text.",
        "with a name that matches the domain",
        "The Default entry's TLS Support, now Preferred.",
    ):
        assert meaning in form_page, meaning
    assert '<option value="default" selected>Default (Preferred)</option>' in form_page
    response = client.post(
        ADD, form(new_name="Example.com", table_tls="required_verify", max_host_concurrency="20"), follow=True
    )
    assert response.redirect_chain == [(PAGE, 302)]
    row = Destination.objects.at(CLUSTER).get(name="example.com")
    assert (row.tls, row.max_connections, row.ip_preference) == ("required_verify", 20, None)
    edit = client.get(edit_url("example.com")).content.decode()
    assert (
        'value="example.com"' in edit
        and '<option value="" selected>Default (IPv6 Preferred)</option>' in edit
    )
    client.post(
        edit_url("example.com"), form(new_name="example.com", table_tls="none", ip_sort_pref="ipv4_required")
    )
    row.refresh_from_db()
    assert (row.tls, row.max_connections, row.ip_preference) == ("none", None, "ipv4_required")
    default_page = client.get(edit_url("Default")).content.decode()
    assert 'name="new_name"' not in default_page and '<option value="default"' not in default_page
    assert 'the ESA ships "No"; this appliance chooses opportunistic TLS on purpose' in default_page
    response = client.post(reverse("destinations:destination_delete"), {"name": ["example.com"]})
    assert response.status_code == 302 and names() == ["Default"]


def test_refusals_on_the_page_change_nothing(login, admin):
    client = login(admin)
    client.post(ADD, form(new_name="example.com", table_tls="required"))
    workflow.commit(admin)
    before = entries.read_items(CLUSTER)
    bad_name = client.post(ADD, form(new_name="exa mple.com"))
    assert bad_name.status_code == 400
    assert (
        "&#x27;exa mple.com&#x27; is not a destination: give a domain (example.com)"
        in bad_name.content.decode()
    )
    duplicate = client.post(ADD, form(new_name="EXAMPLE.COM"))
    assert duplicate.status_code == 409
    assert (
        "The destination &#x27;example.com&#x27; is already in the table. Nothing was changed."
        in duplicate.content.decode()
    )
    too_many = client.post(ADD, form(new_name="a.example", max_host_concurrency="1001", recipient_limit="0"))
    assert too_many.status_code == 400
    assert too_many.content.decode().count("Give a number from 1 to 1,000.") == 1
    assert "Give a number from 1 to 1,000,000." in too_many.content.decode()
    default_default = client.post(
        edit_url("Default"), {"table_tls": "default", "ip_sort_pref": "ipv4_preferred"}
    )
    assert default_default.status_code == 400
    assert (
        "Select a valid choice. default is not one of the available choices."
        in default_default.content.decode()
    )
    delete_default = client.post(reverse("destinations:destination_delete"), {"name": ["Default"]})
    assert delete_default.status_code == 409
    assert "The Default entry cannot be deleted" in delete_default.content.decode()
    assert client.get(edit_url("nowhere.example")).status_code == 404
    assert entries.read_items(CLUSTER) == before
    assert not workflow.has_uncommitted_changes()


def test_the_lookup_on_the_page(login, admin):
    import_text(admin, TABLE)
    client = login(admin)
    url = reverse("destinations:destination_lookup")
    partial = client.get(url, {"address": "user@host.sub.example.com"}, headers={"HX-Request": "true"})
    text = partial.content.decode()
    assert "<html" not in text
    assert "Which entry applies to user@host.sub.example.com?" in text
    assert "the subdomain entry .example.com, the longest one covering host.sub.example.com" in text
    assert "Preferred - Verify" in text
    full = client.get(url, {"address": "user@other.example"}).content.decode()
    assert "Destination Control Table" in full and "Required (the Default entry&#x27;s)" not in full
    assert "no entry covers other.example: the Default entry" in full
    error = client.get(url, {"address": "user@exa mple"}, headers={"HX-Request": "true"}).content.decode()
    assert "is not an address (user@example.com, user@[192.0.2.1]) or a domain" in error


def test_roles(login, read_only, guest, admin):
    response = login(read_only).post(ADD, form(new_name="example.com", table_tls="required"))
    page = response.content.decode()
    assert "Read-Only Operator: this is what your submit would change. Nothing was stored." in page
    assert "Destination Controls: destination &#x27;example.com&#x27;" in page
    assert names() == ["Default"]
    assert login(read_only).get(reverse("destinations:destination_export")).status_code == 200
    for url in (
        PAGE,
        ADD,
        reverse("destinations:destination_export"),
        reverse("destinations:destination_lookup"),
    ):
        assert login(guest).get(url).status_code == 403
    workflow.submit(admin, "add", lambda: store.save_destination(CLUSTER, Entry("example.com")))
    assert (
        login(guest).post(reverse("destinations:destination_delete"), {"name": ["example.com"]}).status_code
        == 403
    )

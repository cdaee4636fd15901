"""System Administration > Configuration File in the browser's terms: download, save, load, refuse."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from appliance import configfile, workflow
from appliance.config.xmlfile import without_header
from appliance.models import AuditEvent, SystemSettings


def download(client, passphrases="mask", passphrase=""):
    return client.post(
        reverse("config_file"),
        {"operation": "download", "passphrases": passphrases, "passphrase": passphrase},
    )


def test_download_is_masked_xml_and_audited(login, admin):
    response = download(login(admin))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml; charset=ISO-8859-1"
    assert response["Content-Disposition"].startswith('attachment; filename="config-')
    document = response.content.decode("latin-1")
    assert document.startswith(
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE config SYSTEM "config.dtd">'
    )
    assert "<private_key>*****</private_key>" in document and "PRIVATE KEY" not in document
    assert AuditEvent.objects.filter(action="export", detail="version 1, mask passphrases").exists()


def test_plain_download_is_for_administrators_only(login, admin, operator):
    assert "BEGIN PRIVATE KEY" in download(login(admin), "plain").content.decode("latin-1")
    response = download(login(operator), "plain")
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_encrypt_needs_a_passphrase(login, admin):
    response = download(login(admin), "encrypt")
    assert response.status_code == 400
    assert "Give the passphrase that will encrypt the private keys." in response.content.decode()
    document = download(login(admin), "encrypt", "pass phrase").content.decode("latin-1")
    assert "<private_key>$scrypt$" in document


def test_save_on_the_appliance_then_load_it_back(login, admin):
    client = login(admin)
    before = set(configfile.saved_files())
    response = client.post(
        reverse("config_file"),
        {"operation": "save", "passphrases": "encrypt", "passphrase": "s3cret"},
        follow=True,
    )
    [name] = set(configfile.saved_files()) - before
    assert f"The configuration has been saved as &quot;{name}&quot;." in response.content.decode()
    assert (configfile.configuration_dir() / name).stat().st_mode & 0o777 == 0o600

    response = client.post(
        reverse("load_config"), {"source": "appliance", "appliance_file": name, "passphrase": "wrong"}
    )
    assert response.status_code == 400
    assert "cannot be decrypted: the passphrase is wrong" in response.content.decode()
    assert not workflow.has_uncommitted_changes()

    response = client.post(
        reverse("load_config"),
        {"source": "appliance", "appliance_file": name, "passphrase": "s3cret"},
        follow=True,
    )
    assert "The configuration has been loaded" in response.content.decode()
    # Loading what runs stages no difference; commit says so.
    assert workflow.pending_changes() == []


def test_a_read_only_operator_downloads_but_saves_nothing_on_the_appliance(login, read_only):
    client = login(read_only)
    before = configfile.saved_files()
    assert "Save file to this appliance" not in client.get(reverse("config_file")).content.decode()
    response = client.post(reverse("config_file"), {"operation": "save", "passphrases": "mask"})
    assert response.status_code == 400
    assert configfile.saved_files() == before
    assert download(client).status_code == 200


def test_pasted_configuration_is_staged_and_committed(login, admin):
    client = login(admin)
    pasted = "<config><hostname>pasted.example.org</hostname></config>"
    response = client.post(reverse("load_config"), {"source": "paste", "pasted": pasted}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("uncommitted_changes")
    assert "pasted.example.org" in response.content.decode()
    client.post(reverse("uncommitted_changes"), {"comment": "pasted"})
    assert workflow.running_config()["hostname"] == [{"hostname": "pasted.example.org"}]


def test_uploaded_configuration_round_trips(login, admin):
    client = login(admin)
    plain = download(client, "plain").content
    edited = plain.replace(
        b"<hostname>esa.example.com</hostname>", b"<hostname>upload.example.org</hostname>"
    )
    upload = SimpleUploadedFile("config.xml", edited, content_type="application/xml")
    client.post(reverse("load_config"), {"source": "upload", "upload": upload})
    client.post(reverse("uncommitted_changes"), {"comment": "uploaded"})
    again = download(client, "plain").content
    assert without_header(again.decode("latin-1")) == without_header(edited.decode("latin-1"))


def test_a_bad_document_is_refused_with_line_and_element_and_changes_nothing(login, admin):
    client = login(admin)
    pasted = "<config>\n<hostname>ok.example.org</hostname>\n<interfaces>\n<interface>\n<interface_name>X</interface_name>\n<ip>999.1.1.1</ip>\n</interface>\n</interfaces>\n</config>"
    response = client.post(reverse("load_config"), {"source": "paste", "pasted": pasted})
    page = response.content.decode()
    assert response.status_code == 400
    assert "The pasted configuration cannot be loaded. Nothing was changed." in page
    assert "line 6: &lt;ip&gt; &#x27;999.1.1.1&#x27; is not an IPv4 or IPv6 address" in page
    assert "line 4: &lt;interface&gt; lacks &lt;interface_hostname&gt;" in page
    assert SystemSettings.load().hostname == "esa.example.com"
    assert not workflow.has_uncommitted_changes()


def test_a_refused_large_paste_is_not_echoed(login, admin):
    client = login(admin)
    pasted = "<config>\n<hostname>ok.example.org</hostname>\n" + "<x/>\n" * 200_000
    pasted += (
        "<config_rollback><versions_kept>" + "9" * 1_000_000 + "</versions_kept></config_rollback></config>"
    )
    response = client.post(reverse("load_config"), {"source": "paste", "pasted": pasted})
    page = response.content.decode()
    assert response.status_code == 400 and len(pasted) > 2_000_000
    assert len(page) < 60_000
    assert "MB) is not shown again: paste it again once corrected." in page
    assert "line 3: " in page and "… and 199951 more problems." in page
    assert "9" * 400 not in page


def test_load_form_names_what_is_missing(login, admin):
    client = login(admin)
    for fields, message in [
        ({"source": "paste", "pasted": "  "}, "Paste the configuration XML."),
        ({"source": "upload"}, "Choose a file to upload."),
        ({"source": "appliance"}, "Choose a file saved on the appliance."),
        ({"source": "appliance", "appliance_file": "../../etc/passwd"}, "Select a valid choice."),
    ]:
        response = client.post(reverse("load_config"), fields)
        assert response.status_code == 400
        assert message in response.content.decode()


def test_read_only_operator_previews_a_load(login, read_only):
    client = login(read_only)
    response = client.post(
        reverse("load_config"),
        {"source": "paste", "pasted": "<config><hostname>ro.example.org</hostname></config>"},
    )
    page = response.content.decode()
    assert "this is what loading would change. Nothing was stored." in page
    assert "ro.example.org" in page
    assert SystemSettings.load().hostname == "esa.example.com"
    assert not workflow.has_uncommitted_changes()


def test_guest_has_no_configuration_file(login, guest):
    client = login(guest)
    assert client.get(reverse("config_file")).status_code == 403
    assert download(client).status_code == 403


def test_an_upload_over_the_size_limit_is_refused_before_reading(login, admin, settings):
    settings.CONFIG_FILE_MAX_BYTES = 1024 * 1024
    upload = SimpleUploadedFile("big.xml", b"<config>" + b" " * (1024 * 1024) + b"</config>")
    response = login(admin).post(reverse("load_config"), {"source": "upload", "upload": upload})
    assert response.status_code == 400
    assert "The file is larger than the limit of 1 MiB." in response.content.decode()
    assert not workflow.has_uncommitted_changes()


def test_a_body_over_the_limit_is_refused_with_413_before_reading(login, admin, settings, caplog):
    settings.CONFIG_FILE_MAX_BYTES = 1024 * 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024 + 64 * 1024
    pasted = "<config><hostname>big.example.org</hostname></config>" + " " * (2 * 1024 * 1024)
    response = login(admin).post(reverse("load_config"), {"source": "paste", "pasted": pasted})
    page = response.content.decode()
    assert response.status_code == 413
    assert "What was sent (2.0\xa0MB) is larger than the console accepts" in page
    assert "a configuration file may be up to 1 MiB. Nothing was changed." in page
    assert not workflow.has_uncommitted_changes()
    [logged] = [r.getMessage() for r in caplog.records if r.name == "django.request"]
    assert logged.startswith("Request Entity Too Large: /admin/config/load/ (user admin, 127.0.0.1): ")

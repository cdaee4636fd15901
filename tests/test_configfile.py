"""The configuration file: its shape, round trips, passphrase modes, section replacement and safe loading."""

from __future__ import annotations

import re
import subprocess
from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied
from lxml import etree

from appliance import configfile, vault, workflow
from appliance.config.levels import CLUSTER
from appliance.config.sections import Field, Kind, Section, registry
from appliance.config.xmlfile import ConfigFileError, SecretMode, parse, render, without_header
from appliance.models import AuditEvent, Interface, SystemSettings
from certificates.models import Certificate

DECLARATION = '<?xml version="1.0" encoding="ISO-8859-1"?>'
MASKED_MESSAGE = (
    "holds a masked passphrase: a file saved with masked passphrases cannot be loaded; "
    "save it again with encrypted or plain passphrases"
)
BAD_HOSTNAME = "is not a valid host name (letters, digits and hyphens, labels of at most 63 characters separated by dots)"
DTD_REFUSED = ["the document declares its own DTD: declarations such as entities are not allowed"]


def xml(*lines: str) -> bytes:
    """A document: line 1 the declaration, line 2 <config>, then ``lines`` from line 3."""
    return ("\n".join([DECLARATION, "<config>", *lines, "</config>"]) + "\n").encode("latin-1")


def line_of(document: str | bytes, needle: str, occurrence: int = 0) -> int:
    text = document.decode("latin-1") if isinstance(document, bytes) else document
    position = -1
    for _ in range(occurrence + 1):
        position = text.index(needle, position + 1)
    return text[:position].count("\n") + 1


def profile(name: str, certificate: str, key: str) -> str:
    return (
        f"<certificate>\n<certificate_name>{name}</certificate_name>\n"
        f"<certificate_pem>{certificate}</certificate_pem>\n<private_key>{key}</private_key>\n</certificate>"
    )


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A certificate and its key, a second unrelated key, and the first key encrypted: all made by openssl."""
    folder = tmp_path_factory.mktemp("pki")
    key, cert, other, encrypted = (str(folder / n) for n in ("key.pem", "cert.pem", "other.pem", "enc.pem"))
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "30",
        "-subj",
        "/CN=mail.example.org",
    )
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", other)
    openssl("pkey", "-in", key, "-aes256", "-passout", "pass:secret", "-out", encrypted)
    read = lambda path: open(path).read()  # noqa: E731
    return SimpleNamespace(
        cert=read(cert), key=read(key), other_key=read(other), encrypted_key=read(encrypted)
    )


def stage_certificate(user, name, pki):
    def apply():
        Certificate.objects.at(CLUSTER).create(
            name=name, certificate_pem=pki.cert, private_key_sealed=vault.seal(pki.key)
        )

    workflow.submit(user, f"add certificate {name}", apply)


def stage_hostname(user, name):
    def apply():
        system = SystemSettings.load()
        system.hostname = name
        system.save()

    workflow.submit(user, f"hostname {name}", apply)


def decrypted(document: str, passphrase: str) -> str:
    cipher = vault.PassphraseCipher(passphrase)
    return re.sub(r"\$scrypt\$[^<]+", lambda m: cipher.decrypt(m.group(0)), document)


@pytest.fixture
def untouched(admin):
    """Call it after a refused load: the candidate is as before and nobody holds the change lock."""
    before = registry.candidate()

    def check():
        assert registry.candidate() == before
        assert not workflow.has_uncommitted_changes()
        assert workflow.lock_state().owner_name == ""

    return check


# --- shape ---------------------------------------------------------------------


def test_saved_file_has_the_esa_shape(admin):
    document = configfile.running_document(admin, SecretMode.MASK)
    lines = document.splitlines()
    assert lines[0] == DECLARATION
    assert lines[1] == '<!DOCTYPE config SYSTEM "config.dtd">'
    header = document[document.index("<!--") : document.index("-->")]
    assert document.index("<!--") < document.index("<config>")
    for expected in (
        "Product: Mail Gateway TLS Console",
        "Version: 1.0",
        "Hostname: esa.example.com",
        "Current Time: ",
    ):
        assert expected in header
    root = etree.fromstring(document.encode("latin-1"))
    assert root.tag == "config"
    children = [(c.tag, c.text) if c.tag is etree.Comment else c.tag for c in root]
    assert [c for c in children if isinstance(c, str)] == [
        "hostname",
        "interfaces",
        "dns",
        "smtp_routes",
        "delivery",
        "listeners",
        "certificates",
        "certificate_authorities",
        "address_lists",
        "destination_controls",
        "url_filtering",
        "ldap",
        "ldap_servers",
        "alerts",
        "ssl_config",
        "config_rollback",
        "network_access",
    ]
    comments = [text for tag, text in (c for c in children if isinstance(c, tuple))]
    assert [c.strip().splitlines()[1].strip("* ") for c in comments] == [
        "Network Configuration",
        "Certificates",
        "Mail Policies",
        "Security Services",
        "LDAP",
        "System Configuration",
    ]
    assert root.findtext("hostname") == "esa.example.com"
    assert root.findtext("interfaces/interface/netmask") == "32"
    assert root.findtext("certificates/certificate/private_key") == vault.MASK


@pytest.fixture
def flags(admin):
    """A section with boolean settings: no shipped section has one yet, the file format must handle them."""
    store = {"enabled": True, "verbose": False}
    section = Section(
        tag="test_flags",
        title="Test flags",
        heading="Test",
        position=950,
        fields=(
            Field("enabled", "Enabled", Kind.BOOL, default=False),
            Field("verbose", "Verbose", Kind.BOOL, default=True),
        ),
        read=lambda: [dict(store)],
        write=lambda items: store.update(items[0]),
    )
    registry.register(section)
    yield store
    registry.sections.pop("test_flags")


def test_booleans_are_written_as_0_and_1_and_read_back(flags):
    document = render(registry.candidate(), SecretMode.MASK)
    assert "<enabled>1</enabled>" in document and "<verbose>0</verbose>" in document
    assert parse(
        xml("<test_flags>", "<enabled>0</enabled>", "<verbose>1</verbose>", "</test_flags>")
    ).config == {"test_flags": [{"enabled": False, "verbose": True}]}


@pytest.mark.parametrize("text", ["yes", "true", "2", ""])
def test_a_boolean_other_than_0_or_1_is_refused(flags, untouched, admin, text):
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, xml("<test_flags>", f"<enabled>{text}</enabled>", "</test_flags>"), None, "t")
    assert error.value.problems == [f"line 4: <enabled> must be 0 or 1, not {text!r}"]
    assert flags == {"enabled": True, "verbose": False}
    untouched()


# --- round trips ---------------------------------------------------------------


def make_interesting_then_save(admin, pki, mode, passphrase=None):
    """Commit a configuration with a second certificate, save it, then change it all and commit that."""
    stage_certificate(admin, "Mail", pki)
    stage_hostname(admin, "mail.example.org")
    workflow.commit(admin, "before saving")
    saved = configfile.running_document(admin, mode, passphrase)
    workflow.submit(admin, "drop Mail", lambda: Certificate.objects.at(CLUSTER).filter(name="Mail").delete())
    stage_hostname(admin, "other.example.org")
    workflow.commit(admin, "after saving")
    return saved


def test_plain_round_trip_gives_the_same_file(admin, pki):
    saved = make_interesting_then_save(admin, pki, SecretMode.PLAIN)
    assert pki.key.strip() in saved
    configfile.load(admin, saved.encode("latin-1"), None, "saved.xml")
    assert workflow.commit(admin, "restored").number == 4
    again = configfile.running_document(admin, SecretMode.PLAIN)
    assert without_header(again) == without_header(saved)


def test_loading_the_running_plain_file_stages_no_change(admin):
    saved = configfile.running_document(admin, SecretMode.PLAIN)
    configfile.load(admin, saved.encode("latin-1"), None, "saved.xml")
    assert workflow.pending_changes() == []
    assert workflow.commit(admin) is None


def test_encrypt_round_trip_gives_the_same_file_once_decrypted(admin, pki):
    saved = make_interesting_then_save(admin, pki, SecretMode.ENCRYPT, "pass phrase")
    assert "PRIVATE KEY" not in saved
    assert len(re.findall(r"<private_key>\$scrypt\$", saved)) == 2
    configfile.load(admin, saved.encode("latin-1"), "pass phrase", "saved.xml")
    workflow.commit(admin, "restored")
    again = configfile.running_document(admin, SecretMode.ENCRYPT, "pass phrase")
    assert without_header(decrypted(again, "pass phrase")) == without_header(decrypted(saved, "pass phrase"))
    plain = configfile.running_document(admin, SecretMode.PLAIN)
    assert without_header(decrypted(again, "pass phrase")) == without_header(plain)


def test_mask_file_is_the_same_after_a_plain_round_trip(admin, pki):
    masked = make_interesting_then_save(admin, pki, SecretMode.MASK)
    plain = configfile.running_document(admin, SecretMode.PLAIN)
    workflow.rollback_to(admin, 2)  # the state saved above, to save it in plain as well
    workflow.commit(admin, "back")
    saved = configfile.running_document(admin, SecretMode.PLAIN)
    configfile.load(admin, plain.encode("latin-1"), None, "after.xml")
    workflow.commit(admin, "after again")
    configfile.load(admin, saved.encode("latin-1"), None, "saved.xml")
    workflow.commit(admin, "restored")
    assert without_header(configfile.running_document(admin, SecretMode.MASK)) == without_header(masked)


def test_a_punycode_hostname_survives_commit_and_the_file(admin):
    stage_hostname(admin, "xn--bcher-kva.example.com")  # a valid hostname with "--" in it
    assert workflow.commit(admin, "IDN").number == 2
    assert workflow.running_config()["hostname"] == [{"hostname": "xn--bcher-kva.example.com"}]
    saved = configfile.running_document(admin, SecretMode.PLAIN)
    configfile.load(admin, saved.encode("latin-1"), None, "saved.xml")
    assert workflow.pending_changes() == []


# --- passphrase modes ----------------------------------------------------------


def test_mask_mode_replaces_the_private_key(admin):
    key = vault.unseal(Certificate.objects.at(CLUSTER).get(name="Demo").private_key_sealed)
    document = configfile.running_document(admin, SecretMode.MASK)
    assert "<private_key>*****</private_key>" in document
    assert "PRIVATE KEY" not in document and key.splitlines()[1] not in document
    assert AuditEvent.objects.filter(action="export", detail="version 1, mask passphrases").exists()


def test_loading_a_masked_file_is_refused_naming_line_and_element(admin, untouched):
    document = configfile.running_document(admin, SecretMode.MASK)
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document.encode("latin-1"), None, "masked.xml")
    assert error.value.problems == [
        f"line {line_of(document, '<private_key>')}: <private_key> {MASKED_MESSAGE}"
    ]
    untouched()


def test_encrypted_file_needs_the_right_passphrase(admin, untouched):
    document = configfile.running_document(admin, SecretMode.ENCRYPT, "right")
    line = line_of(document, "<private_key>")
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document.encode("latin-1"), None, "encrypted.xml")
    assert error.value.problems == [
        f"line {line}: <private_key> is encrypted with a passphrase: give the passphrase to load it"
    ]
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document.encode("latin-1"), "wrong", "encrypted.xml")
    assert error.value.problems == [
        f"line {line}: <private_key> cannot be decrypted: the passphrase is wrong"
    ]
    untouched()


def test_encrypt_mode_without_a_passphrase_is_refused(admin):
    with pytest.raises(workflow.ChangeRefused, match="^Encrypting passphrases needs a passphrase$"):
        configfile.running_document(admin, SecretMode.ENCRYPT, "")


def test_plain_is_for_administrators_only(admin, operator):
    assert "-----BEGIN PRIVATE KEY-----" in configfile.running_document(admin, SecretMode.PLAIN)
    with pytest.raises(
        PermissionDenied, match=r"^The Operator role may not save the configuration with plain passphrases\.$"
    ):
        configfile.running_document(operator, SecretMode.PLAIN)
    assert "$scrypt$" in configfile.running_document(operator, SecretMode.ENCRYPT, "x")


def test_read_only_may_save_masked_only_and_guest_nothing(read_only, guest):
    assert "<private_key>*****</private_key>" in configfile.running_document(read_only, SecretMode.MASK)
    with pytest.raises(PermissionDenied):
        configfile.running_document(read_only, SecretMode.ENCRYPT, "x")
    with pytest.raises(PermissionDenied):
        configfile.running_document(read_only, SecretMode.PLAIN)
    with pytest.raises(PermissionDenied, match=r"^The Guest role may not save the configuration with masked"):
        configfile.running_document(guest, SecretMode.MASK)


def test_saved_file_on_the_appliance_is_private(admin, settings):
    path = configfile.save_on_appliance(admin, SecretMode.PLAIN)
    assert path.parent == settings.DATA_DIR / "configuration"
    assert re.fullmatch(r"esa\.example\.com-\d{8}T\d{6}\.xml", path.name)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.name in configfile.saved_files()


# --- section replacement -------------------------------------------------------


def test_a_document_with_only_hostname_changes_only_the_hostname(admin):
    before = registry.candidate()
    configfile.load(admin, xml("<hostname>mail.example.org</hostname>"), None, "hostname.xml")
    after = registry.candidate()
    assert after["hostname"] == [{"hostname": "mail.example.org"}]
    assert {k: v for k, v in after.items() if k != "hostname"} == {
        k: v for k, v in before.items() if k != "hostname"
    }
    [change] = workflow.pending_changes()
    assert change.title == "System hostname"
    assert workflow.lock_state().owner_name == "admin"
    assert AuditEvent.objects.filter(action="load", user_name="admin", detail="hostname.xml").exists()


def test_a_certificates_section_replaces_the_whole_list(admin, pki):
    stage_certificate(admin, "Mail", pki)
    workflow.commit(admin)
    demo = Certificate.objects.at(CLUSTER).get(name="Demo")
    document = xml(
        "<certificates>",
        profile("Demo", demo.certificate_pem, vault.unseal(demo.private_key_sealed)),
        "</certificates>",
    )
    configfile.load(admin, document, None, "certificates.xml")
    assert list(Certificate.objects.at(CLUSTER).values_list("name", flat=True)) == ["Demo"]
    [change] = workflow.pending_changes()
    assert [(o.action, o.name) for o in change.objects] == [("deleted", "certificate 'Mail'")]


def test_settings_left_out_take_their_defaults(admin):
    workflow.submit(admin, "keep 5", lambda: SystemSettings.objects.update(rollback_versions_kept=5))
    workflow.commit(admin)
    configfile.load(
        admin,
        xml(
            "<interfaces>",
            "<interface>",
            "<interface_name>Data</interface_name>",
            "<ip>10.0.0.1</ip>",
            "<interface_hostname>data.example.com</interface_hostname>",
            "</interface>",
            "</interfaces>",
            "<listeners/>",
            "<config_rollback/>",
        ),
        None,
        "defaults.xml",
    )
    assert SystemSettings.load().rollback_versions_kept == 10
    [interface] = Interface.objects.of("").all()
    assert (interface.name, interface.netmask, interface.https_port, interface.certificate_name) == (
        "Data",
        24,
        None,
        "",
    )


def test_a_reference_to_a_missing_certificate_is_refused_at_load(admin, untouched):
    document = xml(
        "<interfaces>",
        "<interface>",
        "<interface_name>Management</interface_name>",
        "<ip>127.0.0.1</ip>",
        "<interface_hostname>esa.example.com</interface_hostname>",
        "<httpsd_port>8443</httpsd_port>",
        "<certificate_name>Missing</certificate_name>",
        "</interface>",
        "</interfaces>",
    )
    with pytest.raises(workflow.ChangeRefused, match="^The configuration cannot be loaded$") as refusal:
        configfile.load(admin, document, None, "dangling.xml")
    assert refusal.value.problems == [
        "line 9: <certificate_name> names certificate 'Missing', which does not exist"
    ]
    untouched()


def test_a_reference_to_a_certificate_of_the_same_document_is_accepted(admin, pki):
    document = xml(
        "<interfaces>",
        "<interface>",
        "<interface_name>Management</interface_name>",
        "<ip>127.0.0.1</ip>",
        "<interface_hostname>esa.example.com</interface_hostname>",
        "<httpsd_port>8443</httpsd_port>",
        "<certificate_name>Mail</certificate_name>",
        "</interface>",
        "</interfaces>",
        "<listeners/>",
        "<certificates>",
        profile("Mail", pki.cert, pki.key),
        "</certificates>",
    )
    configfile.load(admin, document, None, "new.xml")
    version = workflow.commit(admin, "Mail certificate")
    # Not the Demo certificate any more; but 'Mail' does not name the interface's host.
    assert workflow.commit_warnings(version) == [
        "interface 'Management' (HTTPS Certificate): The certificate 'Mail' (mail.example.org) "
        "does not cover the host name esa.example.com"
    ]
    assert workflow.running_config()["interfaces"][0]["certificate_name"] == "Mail"


def test_read_only_load_is_a_preview_that_stores_nothing(read_only, untouched):
    result = configfile.load(read_only, xml("<hostname>ro.example.org</hostname>"), None, "ro.xml")
    assert isinstance(result, workflow.Preview)
    [change] = result.changes
    assert [(f.label, f.before, f.after) for f in change.objects[0].fields] == [
        ("Hostname", "esa.example.com", "ro.example.org")
    ]
    untouched()


def test_load_is_refused_while_another_user_has_changes(admin, operator, untouched):
    stage_hostname(operator, "op.example.org")
    with pytest.raises(workflow.ChangeRefused, match=r"^olivia has uncommitted changes since \d\d:\d\d$"):
        configfile.load(admin, xml("<hostname>admin.example.org</hostname>"), None, "h.xml")
    assert SystemSettings.load().hostname == "op.example.org"


# --- bad documents -------------------------------------------------------------

INTERFACE_OPEN = ["<interfaces>", "<interface>", "<interface_name>Management</interface_name>"]
BAD_DOCUMENTS = {
    "wrong root": (
        f"{DECLARATION}\n<configuration>\n<hostname>a.example.org</hostname>\n</configuration>\n".encode(),
        ["line 2: the root element must be <config>, not <configuration>"],
    ),
    "unknown section": (
        xml("<hostname>a.example.org</hostname>", "<frobnicator/>"),
        ["line 4: <frobnicator> is not a configuration section of this appliance"],
    ),
    "unknown element": (
        xml(
            "<config_rollback>",
            "<versions_kept>5</versions_kept>",
            "<colour>blue</colour>",
            "</config_rollback>",
        ),
        ["line 5: <colour> is not a setting of <config_rollback>"],
    ),
    "unknown list item": (
        xml("<interfaces>", "<iface/>", "</interfaces>"),
        ["line 4: <iface> does not belong in <interfaces> (expected <interface>)"],
    ),
    "duplicate section": (
        xml("<hostname>a.example.org</hostname>", "<hostname>b.example.org</hostname>"),
        ["line 4: <hostname> appears twice: each section may appear once"],
    ),
    "duplicate setting": (
        xml(
            "<config_rollback>",
            "<versions_kept>5</versions_kept>",
            "<versions_kept>6</versions_kept>",
            "</config_rollback>",
        ),
        ["line 5: <versions_kept> appears twice"],
    ),
    "duplicate names": (
        xml(
            *INTERFACE_OPEN,
            "<ip>127.0.0.1</ip>",
            "<interface_hostname>a.example.org</interface_hostname>",
            "</interface>",
            "<interface>",
            "<interface_name>Management</interface_name>",
            "<ip>127.0.0.2</ip>",
            "<interface_hostname>a.example.org</interface_hostname>",
            "</interface>",
            "</interfaces>",
        ),
        ["line 9: <interface> repeats the name 'Management' (first on line 4)"],
    ),
    "bad int": (
        xml(
            *INTERFACE_OPEN,
            "<ip>127.0.0.1</ip>",
            "<netmask>abc</netmask>",
            "<interface_hostname>a.example.org</interface_hostname>",
            "</interface>",
            "</interfaces>",
        ),
        ["line 7: <netmask> must be a whole number, not 'abc'"],
    ),
    "int out of range": (
        xml("<config_rollback>", "<versions_kept>101</versions_kept>", "</config_rollback>"),
        ["line 4: <versions_kept> must be between 1 and 100, not 101"],
    ),
    "netmask too long for IPv4": (
        xml(
            *INTERFACE_OPEN,
            "<ip>10.0.0.1</ip>",
            "<netmask>33</netmask>",
            "<interface_hostname>a.example.org</interface_hostname>",
            "</interface>",
            "</interfaces>",
        ),
        ["line 7: <netmask> must be at most 32 for 10.0.0.1"],
    ),
    "missing required element": (
        xml(
            *INTERFACE_OPEN,
            "<interface_hostname>a.example.org</interface_hostname>",
            "</interface>",
            "</interfaces>",
        ),
        ["line 4: <interface> lacks <ip>"],
    ),
    "invalid hostname": (
        xml("<hostname>bad_name.example.org</hostname>"),
        [f"line 3: <hostname> 'bad_name.example.org' {BAD_HOSTNAME}"],
    ),
    "invalid address": (
        xml(
            *INTERFACE_OPEN,
            "<ip>300.1.1.1</ip>",
            "<interface_hostname>a.example.org</interface_hostname>",
            "</interface>",
            "</interfaces>",
        ),
        ["line 6: <ip> '300.1.1.1' is not an IPv4 or IPv6 address"],
    ),
    "value with elements": (
        xml("<hostname><name>a.example.org</name></hostname>"),
        ["line 3: <hostname> must hold a value, not other elements"],
    ),
    "several problems": (
        xml(
            "<hostname>-bad.example.org</hostname>",
            "<config_rollback>",
            "<versions_kept>x</versions_kept>",
            "</config_rollback>",
        ),
        [
            f"line 3: <hostname> '-bad.example.org' {BAD_HOSTNAME}",
            "line 5: <versions_kept> must be a whole number, not 'x'",
        ],
    ),
    "empty file": (b"", ["the file is empty: no data to load"]),
    "blank file": (b" \n\r\n\t", ["the file is empty: no data to load"]),
}


@pytest.mark.parametrize("document, problems", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_a_bad_document_is_refused_naming_the_problem(admin, untouched, document, problems):
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document, None, "bad.xml")
    assert error.value.problems == problems
    untouched()


def test_not_xml_is_refused_naming_the_line(admin, untouched):
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, xml("<hostname>a.example.org</hostnam>"), None, "bad.xml")
    [problem] = error.value.problems
    assert re.fullmatch(r"line 3: not well-formed XML \(.+\)", problem)
    untouched()


def test_a_key_that_does_not_match_its_certificate_is_refused(admin, untouched, pki):
    document = xml("<certificates>", profile("Mail", pki.cert, pki.other_key), "</certificates>")
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document, None, "mismatch.xml")
    assert error.value.problems == [
        f"line {line_of(document, '<private_key>')}: <private_key> does not match the certificate of 'Mail'"
    ]
    untouched()


def test_an_encrypted_pem_key_or_a_broken_certificate_is_refused(admin, untouched, pki):
    document = xml(
        "<certificates>",
        profile("Mail", pki.cert, pki.encrypted_key),
        profile("Broken", "not a certificate", pki.key),
        "</certificates>",
    )
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document, None, "bad-pem.xml")
    assert error.value.problems == [
        f"line {line_of(document, '<private_key>')}: <private_key> is not an unencrypted PEM private key",
        f"line {line_of(document, '<certificate_pem>', 1)}: <certificate_pem> is not a PEM certificate "
        "(-----BEGIN CERTIFICATE----- … block)",
    ]
    untouched()


def billion_laughs(declaration: str) -> str:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return "\n".join(
        [
            declaration,
            "<!DOCTYPE config [",
            *entities,
            "]>",
            "<config>",
            "<hostname>&lol9;</hostname>",
            "</config>",
        ]
    )


def test_billion_laughs_is_refused(admin, untouched):
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, billion_laughs(DECLARATION).encode("latin-1"), None, "lol.xml")
    assert error.value.problems == DTD_REFUSED
    untouched()


def test_billion_laughs_in_utf16_is_refused_too(admin, untouched):
    document = billion_laughs('<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16")
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document, None, "lol16.xml")
    [problem] = error.value.problems  # libxml2 may stop it before the appliance's own DTD check
    assert problem == DTD_REFUSED[0] or "Maximum entity amplification factor exceeded" in problem
    untouched()


def test_an_internal_entity_is_refused(admin, untouched):
    document = f'{DECLARATION}\n<!DOCTYPE config [<!ENTITY name "evil.example.org">]>\n<config>\n<hostname>&name;</hostname>\n</config>\n'
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document.encode(), None, "entity.xml")
    assert error.value.problems == DTD_REFUSED
    untouched()


@pytest.mark.parametrize(
    "dtd, use",
    [
        ('<!ENTITY xxe SYSTEM "file:///etc/passwd">', "&xxe;"),
        ('<!ENTITY % xxe SYSTEM "file:///etc/passwd"> %xxe;', "a.example.org"),
    ],
    ids=["general entity", "parameter entity"],
)
@pytest.mark.parametrize("encoding", ["ISO-8859-1", "UTF-16"])
def test_external_entities_are_refused_and_never_read(admin, untouched, dtd, use, encoding):
    document = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<!DOCTYPE config [{dtd}]>\n<config>\n'
        f"<hostname>{use}</hostname>\n</config>\n"
    )
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document.encode(encoding), None, "xxe.xml")
    assert error.value.problems == DTD_REFUSED
    assert "root:" not in str(error.value)
    untouched()


def test_an_external_dtd_is_never_fetched(admin, untouched, tmp_path):
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY name "evil.example.org">\n')
    document = f'{DECLARATION}\n<!DOCTYPE config SYSTEM "{dtd.as_uri()}">\n<config>\n<hostname>&name;</hostname>\n</config>\n'
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document.encode(), None, "dtd.xml")
    assert error.value.problems == ["the document uses entity references, which are not allowed"]
    untouched()


def test_a_file_over_the_size_limit_is_refused(admin, untouched, settings):
    settings.CONFIG_FILE_MAX_BYTES = 1024 * 1024
    start = xml("<hostname>big.example.org</hostname>", "<!--")
    end = b"-->\n</config>\n"
    start = start[: start.rindex(b"</config>")]
    exactly = start + b"x" * (settings.CONFIG_FILE_MAX_BYTES - len(start) - len(end)) + end
    assert len(exactly) == settings.CONFIG_FILE_MAX_BYTES
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, exactly.replace(b"-->", b"x-->"), None, "big.xml")
    assert error.value.problems == ["the file is larger than the limit of 1 MiB"]
    untouched()
    configfile.load(admin, exactly, None, "limit.xml")
    assert SystemSettings.load().hostname == "big.example.org"


def test_a_small_size_limit_is_stated_truthfully(admin, settings):
    settings.CONFIG_FILE_MAX_BYTES = 4096  # the setting allows limits under 1 MiB
    with pytest.raises(ConfigFileError) as error:
        configfile.load(
            admin, xml("<hostname>big.example.org</hostname>", "<!--" + "x" * 5000 + "-->"), None, "b"
        )
    [problem] = error.value.problems
    assert problem.startswith("the file is larger than the limit of ") and "limit of 0 " not in problem


def test_items_without_their_name_are_not_reported_as_repeating_none(admin, untouched):
    document = xml(
        "<interfaces>",
        "<interface><ip>10.0.0.1</ip><interface_hostname>a.example.org</interface_hostname></interface>",
        "<interface><ip>10.0.0.2</ip><interface_hostname>a.example.org</interface_hostname></interface>",
        "</interfaces>",
    )
    with pytest.raises(ConfigFileError) as error:
        configfile.load(admin, document, None, "unnamed.xml")
    assert error.value.problems == [
        "line 4: <interface> lacks <interface_name>",
        "line 5: <interface> lacks <interface_name>",
    ]
    untouched()


def test_a_large_configuration_loads_within_the_size_limit(admin, pki, settings):
    names = [f"cert-{n:04d}" for n in range(1000)]
    document = xml(
        "<interfaces>",
        "<interface>",
        "<interface_name>Management</interface_name>",
        "<ip>127.0.0.1</ip>",
        "<interface_hostname>esa.example.com</interface_hostname>",
        "<httpsd_port>8443</httpsd_port>",
        "<certificate_name>cert-0999</certificate_name>",
        "</interface>",
        "</interfaces>",
        "<listeners/>",
        "<certificates>",
        *(profile(name, pki.cert, pki.key) for name in names),
        "</certificates>",
    )
    assert len(document) <= settings.CONFIG_FILE_MAX_BYTES
    configfile.load(admin, document, None, "large.xml")
    assert list(Certificate.objects.at(CLUSTER).values_list("name", flat=True)) == names
    assert workflow.commit(admin, "large").number == 2
    saved = configfile.running_document(admin, SecretMode.MASK)
    assert saved.count("<certificate>") == 1000

"""The console commands: in-process through call_command, and as real processes for exit statuses and races."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from django.utils import timezone

from appliance import configfile, vault, workflow
from appliance.models import AuditEvent, ConfigVersion, SystemSettings, User
from tests.conftest import PASSWORD
from tests.console import refused, run

BASE = Path(__file__).resolve().parent.parent
PYTHON = str(BASE / ".venv" / "bin" / "python")
DEMO_WARNING = (
    "Warning: You are currently using a demonstration certificate (Demo) which is not secure and is not "
    "recommended for general use (used by interface 'Management', listener 'IncomingMail')"
)
BAD_HOSTNAME = "is not a valid host name (letters, digits and hyphens, labels of at most 63 characters separated by dots)"
LOCKED_BY = r"has uncommitted changes since \d\d:\d\d"


def candidate_hostname() -> str:
    return SystemSettings.load().hostname


def running_hostname() -> str:
    return workflow.running_config()["hostname"][0]["hostname"]


def lock_owner() -> str:
    return workflow.lock_state().owner_name


# --- sethostname, commit, clear -------------------------------------------------


def test_sethostname_without_a_name_prints_the_candidate_hostname(admin):
    assert run("sethostname") == ("esa.example.com\n", "")
    run("sethostname", "mail.example.org")
    assert run("sethostname") == ("mail.example.org\n", "")


def test_sethostname_stages_the_name(admin):
    assert run("sethostname", "mail.example.org") == (
        "Hostname mail.example.org staged. Use commit to apply it.\n",
        "",
    )
    assert (candidate_hostname(), running_hostname(), lock_owner()) == (
        "mail.example.org",
        "esa.example.com",
        "admin",
    )
    assert AuditEvent.objects.filter(
        action="submit", source="CLI", detail="set hostname to mail.example.org"
    ).exists()


@pytest.mark.parametrize("name", ["bad_name", "a-.example.org", "a..example.org", "x" * 64 + ".example.org"])
def test_sethostname_refuses_a_bad_name(admin, name):
    assert refused("sethostname", name) == f"Error: {name!r} {BAD_HOSTNAME}"
    assert (candidate_hostname(), lock_owner()) == ("esa.example.com", "")


def test_commit_with_a_comment_records_a_version_and_warns_about_demo(admin):
    run("sethostname", "mail.example.org")
    assert run("commit", "--comment", "new name") == ("Changes committed: version 2\n", DEMO_WARNING + "\n")
    version = ConfigVersion.objects.get(number=2)
    assert (version.user_name, version.comment) == ("admin", "new name")
    assert (running_hostname(), lock_owner()) == ("mail.example.org", "")


def test_commit_with_nothing_pending(admin):
    assert run("commit") == ("No changes to commit.\n", "")
    assert ConfigVersion.objects.count() == 1


def test_only_the_owner_of_the_changes_can_commit_them(admin, second_admin):
    run("sethostname", "mail.example.org")
    line = refused("commit", "--user=bob")
    assert re.fullmatch(rf"Error: admin {LOCKED_BY}; only they can commit them", line)
    assert ConfigVersion.objects.count() == 1


def test_clear_abandons_own_changes(admin):
    run("sethostname", "mail.example.org")
    assert run("clear") == ("Changes cleared.\n", "")
    assert (candidate_hostname(), lock_owner()) == ("esa.example.com", "")
    assert run("clear") == ("No changes to commit.\n", "")


def test_clear_of_another_users_changes_needs_force(admin, operator):
    run("sethostname", "--user=olivia", "op.example.org")
    assert re.fullmatch(
        rf"Error: olivia {LOCKED_BY}; use --force to abandon them \(Administrators only\)", refused("clear")
    )
    assert (candidate_hostname(), lock_owner()) == ("op.example.org", "olivia")
    assert run("clear", "--force") == (
        "Changes cleared.\n",
        "Warning: abandoned the uncommitted changes of olivia\n",
    )
    assert (candidate_hostname(), lock_owner()) == ("esa.example.com", "")
    assert AuditEvent.objects.filter(
        action="abandon", user_name="admin", detail__contains="changes of olivia"
    ).exists()


def test_an_operator_cannot_clear_another_users_changes_even_with_force(admin, operator):
    run("sethostname", "mail.example.org")
    assert refused("clear", "--user=olivia").startswith("Error: admin has uncommitted changes since ")
    line = refused("clear", "--user=olivia", "--force")
    assert re.fullmatch(rf"Error: admin {LOCKED_BY}; only they or an Administrator can abandon them", line)
    assert (candidate_hostname(), lock_owner()) == ("mail.example.org", "admin")


def test_another_administrators_submit_is_refused_naming_the_owner(admin, second_admin):
    run("sethostname", "mail.example.org")
    since = timezone.localtime(workflow.lock_state().since)
    assert refused("sethostname", "--user=bob", "bob.example.org") == (
        f"Error: admin has uncommitted changes since {since:%H:%M}"
    )
    assert candidate_hostname() == "mail.example.org"


# --- rollbackconfig -------------------------------------------------------------


def listing_lines() -> list[str]:
    two, one = ConfigVersion.objects.order_by("-number")
    local = lambda version: f"{timezone.localtime(version.created):%Y-%m-%d %H:%M:%S}"  # noqa: E731
    return [f"2\t{local(two)}\tbob\tnew name (running)", f"1\t{local(one)}\tadmin\tInitial configuration"]


def test_rollbackconfig_list_shows_number_time_user_and_comment(admin, second_admin):
    run("sethostname", "--user=bob", "mail.example.org")
    run("commit", "--user=bob", "--comment", "new name")
    out, err = run("rollbackconfig", "--list")
    assert (out.splitlines(), err) == (listing_lines(), "")


def test_rollbackconfig_list_shows_times_in_the_appliance_time_zone(admin, second_admin, settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # as the change lock's "since HH:MM" does
    run("sethostname", "--user=bob", "mail.example.org")
    run("commit", "--user=bob", "--comment", "new name")
    assert run("rollbackconfig", "--list")[0].splitlines() == listing_lines()


def test_rollbackconfig_to_stages_only(admin):
    run("sethostname", "two.example.org")
    run("commit", "--comment", "two")
    assert run("rollbackconfig", "--to", "1") == ("Version 1 staged. Use commit to apply it.\n", "")
    assert (candidate_hostname(), running_hostname(), lock_owner()) == (
        "esa.example.com",
        "two.example.org",
        "admin",
    )
    assert ConfigVersion.objects.count() == 2
    assert run("commit")[0] == "Changes committed: version 3\n"
    assert running_hostname() == "esa.example.com"


def test_rollbackconfig_to_a_version_not_kept(admin):
    run("sethostname", "two.example.org")
    run("commit")
    assert (
        refused("rollbackconfig", "--to", "9")
        == "Error: Version 9 is not kept on this appliance (kept: 2, 1)"
    )
    assert lock_owner() == ""


# --- saveconfig, showconfig, passphrase files -----------------------------------


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_saveconfig_mask_to_a_file(admin, tmp_path):
    path = tmp_path / "saved.xml"
    assert run("saveconfig", "--passphrases", "mask", "--file", str(path)) == (f"{path}\n", "")
    assert mode_of(path) == 0o600
    text = path.read_text(encoding="latin-1")
    assert "<private_key>*****</private_key>" in text and "PRIVATE KEY" not in text


def test_saveconfig_without_file_saves_in_the_configuration_folder(admin, settings):
    out, err = run("saveconfig", "--passphrases", "mask")
    path = Path(out.rstrip("\n"))
    assert path.parent == settings.DATA_DIR / "configuration"
    assert re.fullmatch(r"esa\.example\.com-\d{8}T\d{6}\.xml", path.name)
    assert mode_of(path) == 0o600 and err == ""


def test_two_saves_in_one_second_keep_both_files(admin, settings, monkeypatch):
    moment = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: moment)
    first, second = (Path(run("saveconfig", "--passphrases", "mask")[0].rstrip("\n")) for _ in range(2))
    stem = f"esa.example.com-{moment:%Y%m%dT%H%M%S}"
    assert first.name.startswith(stem) and second.name.startswith(stem) and first != second
    assert first.read_text(encoding="latin-1") == second.read_text(encoding="latin-1")


def test_a_read_only_operator_saves_nothing_on_the_appliance(admin, read_only, tmp_path):
    before = configfile.saved_files()
    line = refused("saveconfig", "--user=rita", "--passphrases", "mask")
    assert line == "Error: The Read-Only Operator role may not save files on the appliance."
    refused("saveconfig", "--user=rita", "--passphrases", "mask", "--file", str(tmp_path / "x.xml"))
    assert configfile.saved_files() == before and not (tmp_path / "x.xml").exists()
    assert "<hostname>esa.example.com</hostname>" in run("showconfig", "--user=rita")[0]


def test_saveconfig_plain_warns_and_the_file_is_private(admin, tmp_path):
    path = tmp_path / "plain.xml"
    out, err = run("saveconfig", "--passphrases", "plain", "--file", str(path))
    assert (out, err) == (f"{path}\n", "Warning: the file holds private keys in plain text\n")
    assert "-----BEGIN PRIVATE KEY-----" in path.read_text(encoding="latin-1")
    assert mode_of(path) == 0o600


def test_saveconfig_over_an_existing_readable_file_leaves_it_private(admin, tmp_path):
    path = tmp_path / "old.xml"
    path.write_text("old")
    path.chmod(0o644)
    run("saveconfig", "--passphrases", "plain", "--file", str(path))
    assert "PRIVATE KEY" in path.read_text(encoding="latin-1")
    assert mode_of(path) == 0o600


def test_saveconfig_plain_is_refused_for_an_operator(operator, tmp_path):
    path = tmp_path / "plain.xml"
    assert refused("saveconfig", "--user=olivia", "--passphrases", "plain", "--file", str(path)) == (
        "Error: The Operator role may not save the configuration with plain passphrases."
    )
    assert not path.exists()


def test_saveconfig_encrypt_needs_a_passphrase_file(admin, tmp_path):
    assert refused("saveconfig", "--passphrases", "encrypt", "--file", str(tmp_path / "x.xml")) == (
        "Error: --passphrases encrypt needs --passphrase-file"
    )
    assert not (tmp_path / "x.xml").exists()


def test_passphrase_file_first_line_without_trailing_cr_lf(admin, tmp_path):
    secret, path = tmp_path / "secret.txt", tmp_path / "enc.xml"
    secret.write_bytes(b"secret\r\nsecond line\n")
    run("saveconfig", "--passphrases", "encrypt", "--passphrase-file", str(secret), "--file", str(path))
    assert mode_of(path) == 0o600
    [token] = re.findall(r"<private_key>([^<]+)</private_key>", path.read_text(encoding="latin-1"))
    key = vault.PassphraseCipher("secret").decrypt(token)
    assert key.startswith("-----BEGIN PRIVATE KEY-----")
    plain_line = tmp_path / "plain-line.txt"
    plain_line.write_text("secret\n")
    run("clear")
    assert run("loadconfig", str(path), "--passphrase-file", str(plain_line)) == (
        "Values have been loaded. Use commit to apply them.\n",
        "",
    )


@pytest.mark.parametrize(
    "content", [b"", b"\n", b"\r\nsecret\n"], ids=["empty", "newline", "blank first line"]
)
def test_an_empty_passphrase_file_is_refused(admin, tmp_path, content):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(content)
    assert (
        refused(
            "saveconfig",
            "--passphrases",
            "encrypt",
            "--passphrase-file",
            str(secret),
            "--file",
            str(tmp_path / "x.xml"),
        )
        == f'Error: the passphrase file "{secret}" is empty'
    )


def test_a_missing_passphrase_file_is_refused(admin, tmp_path):
    missing = tmp_path / "missing.txt"
    assert refused("showconfig", "--passphrases", "encrypt", "--passphrase-file", str(missing)) == (
        f'Error: the passphrase file "{missing}" does not exist'
    )


def test_showconfig_masks_by_default_and_shows_the_running_configuration(admin):
    run("sethostname", "staged.example.org")
    out, err = run("showconfig")
    assert err == ""
    assert out.startswith(
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE config SYSTEM "config.dtd">\n'
    )
    assert "<private_key>*****</private_key>" in out and "PRIVATE KEY" not in out
    assert "<hostname>esa.example.com</hostname>" in out and "staged.example.org" not in out


def test_showconfig_plain_and_encrypt(admin, operator, tmp_path):
    assert "-----BEGIN PRIVATE KEY-----" in run("showconfig", "--passphrases", "plain")[0]
    assert refused("showconfig", "--user=olivia", "--passphrases", "plain") == (
        "Error: The Operator role may not save the configuration with plain passphrases."
    )
    assert (
        refused("showconfig", "--passphrases", "encrypt")
        == "Error: --passphrases encrypt needs --passphrase-file"
    )


# --- loadconfig -----------------------------------------------------------------


def test_loadconfig_stages_a_file(admin, tmp_path):
    path = tmp_path / "hostname.xml"
    path.write_text(
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<config>\n<hostname>new.example.org</hostname>\n</config>\n'
    )
    assert run("loadconfig", str(path)) == ("Values have been loaded. Use commit to apply them.\n", "")
    assert (candidate_hostname(), running_hostname(), lock_owner()) == (
        "new.example.org",
        "esa.example.com",
        "admin",
    )
    assert AuditEvent.objects.filter(action="load", source="CLI", detail="loaded hostname.xml").exists()


def test_loadconfig_of_a_missing_file(admin, tmp_path):
    missing = tmp_path / "missing.xml"
    assert refused("loadconfig", str(missing)) == f'Error: the file "{missing}" does not exist'


def test_loadconfig_of_a_masked_file_names_line_and_element(admin, tmp_path):
    path = tmp_path / "masked.xml"
    run("saveconfig", "--passphrases", "mask", "--file", str(path))
    text = path.read_text(encoding="latin-1")
    line = text[: text.index("<private_key>")].count("\n") + 1
    assert refused("loadconfig", str(path)) == (
        f"Error: Parsing failed: line {line}: <private_key> holds a masked passphrase: a file saved with masked "
        "passphrases cannot be loaded; save it again with encrypted or plain passphrases"
    )
    assert lock_owner() == ""


def test_loadconfig_of_a_file_with_external_entity_never_shows_it(admin, tmp_path):
    path = tmp_path / "xxe.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE config [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        "<config><hostname>&x;</hostname></config>\n"
    )
    assert refused("loadconfig", str(path)) == (
        "Error: Parsing failed: the document declares its own DTD: declarations such as entities are not allowed"
    )
    assert candidate_hostname() == "esa.example.com"


def test_loadconfig_refuses_a_reference_to_a_missing_certificate(admin, tmp_path):
    path = tmp_path / "dangling.xml"
    path.write_text(
        "<config>\n<interfaces>\n<interface>\n<interface_name>Management</interface_name>\n"
        "<ip>127.0.0.1</ip>\n<interface_hostname>esa.example.com</interface_hostname>\n"
        "<certificate_name>Missing</certificate_name>\n</interface>\n</interfaces>\n</config>\n"
    )
    assert refused("loadconfig", str(path)) == (
        "Error: The configuration cannot be loaded; "
        "line 7: <certificate_name> names certificate 'Missing', which does not exist"
    )
    assert lock_owner() == ""


# --- users and roles ------------------------------------------------------------


def test_an_unknown_or_locked_user_is_refused(admin):
    assert refused("sethostname", "--user=nobody", "x.example.org") == "Error: there is no user 'nobody'"
    User.objects.filter(username="admin").update(is_active=False)
    assert refused("showconfig") == "Error: the account 'admin' is locked"


def test_read_only_operator_gets_a_preview_and_nothing_is_stored(read_only, tmp_path):
    assert run("sethostname", "--user=rita", "ro.example.org") == (
        "Preview only (Read-Only Operator): nothing was stored.\n"
        "System hostname: System hostname changed\n"
        "  Hostname: esa.example.com -> ro.example.org\n",
        "",
    )
    path = tmp_path / "h.xml"
    path.write_text("<config><hostname>file.example.org</hostname></config>")
    assert run("loadconfig", "--user=rita", str(path))[0].splitlines()[0] == (
        "Preview only (Read-Only Operator): nothing was stored."
    )
    assert (candidate_hostname(), lock_owner()) == ("esa.example.com", "")
    assert (
        refused("commit", "--user=rita")
        == "Error: The Read-Only Operator role may not commit or abandon changes."
    )
    assert "<private_key>*****</private_key>" in run("showconfig", "--user=rita")[0]


def test_guest_is_refused(guest):
    assert refused("sethostname", "--user=gus", "g.example.org") == (
        "Error: The Guest role may not fill and submit forms to preview a change."
    )
    assert refused("showconfig", "--user=gus") == (
        "Error: The Guest role may not save the configuration with masked passphrases."
    )
    assert (
        refused("rollbackconfig", "--user=gus", "--list")
        == "Error: The Guest role may not view the configuration."
    )
    assert refused("clear", "--user=gus") == "Error: The Guest role may not commit or abandon changes."
    assert candidate_hostname() == "esa.example.com"


# --- real processes -------------------------------------------------------------

SETUP = """
import django
django.setup()
from django.core.management import call_command
from appliance import bootstrap
from appliance.models import Role, User
call_command("migrate", verbosity=0)
bootstrap.first_start()
bob = User(username="bob", role=Role.ADMINISTRATOR)
bob.set_password("Another-Horse-43")
bob.save()
"""


# The suite's PostgreSQL pass hands these down; an appliance of its own keeps SQLite in its folder.
SHARED_DATABASE = ("APPLIANCE_DATABASE_URL", "APPLIANCE_SECRET_KEY_FILE")


@pytest.fixture
def data_dir(tmp_path):
    """A fresh appliance in its own data directory, with users admin and bob (both Administrators)."""
    folder = tmp_path / "data"
    environment = {
        **{name: value for name, value in os.environ.items() if name not in SHARED_DATABASE},
        "DJANGO_SETTINGS_MODULE": "appliance.settings",
        "APPLIANCE_DATA_DIR": str(folder),
        "APPLIANCE_HOSTNAME": "esa.example.com",
        "APPLIANCE_ADMIN_PASSWORD": PASSWORD,
        "APPLIANCE_LISTEN_ADDRESS": "127.0.0.1",
        "APPLIANCE_HTTPS_PORT": "8443",
    }
    subprocess.run(
        [PYTHON, "-c", SETUP], cwd=BASE, env=environment, check=True, capture_output=True, timeout=120
    )
    return environment


def manage(environment, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=BASE, env=environment, capture_output=True, text=True, timeout=120
    )


def test_real_exit_statuses_and_streams(data_dir, tmp_path):
    done = manage(data_dir, "sethostname", "mail.example.org")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "Hostname mail.example.org staged. Use commit to apply it.\n",
        "",
    )
    done = manage(data_dir, "commit", "--comment", "from a shell")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "Changes committed: version 2\n",
        DEMO_WARNING + "\n",
    )
    done = manage(data_dir, "saveconfig", "--passphrases", "plain", "--file", str(tmp_path / "p.xml"))
    assert (done.returncode, done.stderr) == (0, "Warning: the file holds private keys in plain text\n")
    assert mode_of(tmp_path / "p.xml") == 0o600
    for args, message in [
        (("sethostname", "bad_name"), f"Error: 'bad_name' {BAD_HOSTNAME}\n"),
        (("commit", "--user", "nobody"), "Error: there is no user 'nobody'\n"),
        (
            ("loadconfig", str(tmp_path / "none.xml")),
            f'Error: the file "{tmp_path / "none.xml"}" does not exist\n',
        ),
    ]:
        refusal = manage(data_dir, *args)
        assert (refusal.returncode, refusal.stdout, refusal.stderr) == (1, "", message)
    for args in [
        ("rollbackconfig",),
        ("commit", "--bogus"),
        ("saveconfig",),
        ("saveconfig", "--passphrases", "cleartext"),
    ]:
        usage = manage(data_dir, *args)
        assert usage.returncode == 2, args
        assert usage.stderr.startswith("usage: manage.py ") and "Traceback" not in usage.stderr
    listing = manage(data_dir, "rollbackconfig", "--list")
    assert listing.returncode == 0
    assert [line.split("\t")[::3] for line in listing.stdout.splitlines()] == [
        ["2", "from a shell (running)"],
        ["1", "Initial configuration"],
    ]


def test_an_internal_error_is_one_line_without_traceback(data_dir):
    # A data directory restored with another appliance's key: stored secrets cannot be read.
    key_file = Path(data_dir["APPLIANCE_DATA_DIR"]) / "appliance.key"
    key_file.write_bytes(b"IfjUPqFV8kAL3iQcNKV0wVPOLpzpv6fO1vLbt5vU5dg=\n")
    failed = manage(data_dir, "showconfig", "--passphrases", "plain")
    assert failed.returncode == 1
    assert failed.stdout == "" and "Traceback" not in failed.stderr
    [line] = failed.stderr.splitlines()
    assert line.startswith("Error: ")


def test_two_administrators_racing_only_one_wins(data_dir):
    users = ["admin", "bob"] * 3
    processes = [
        subprocess.Popen(
            [PYTHON, "manage.py", "sethostname", "--user", user, f"host{n}.example.org"],
            cwd=BASE,
            env=data_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, user in enumerate(users)
    ]
    results = [
        (n, user, *process.communicate(timeout=120), process.returncode)
        for n, (user, process) in enumerate(zip(users, processes, strict=True))
    ]
    winners = {user for n, user, out, err, status in results if status == 0}
    assert len(winners) == 1, results
    [winner] = winners
    for n, user, out, err, status in results:
        if user == winner:
            assert (status, out, err) == (
                0,
                f"Hostname host{n}.example.org staged. Use commit to apply it.\n",
                "",
            )
        else:
            assert status == 1 and out == "", results
            assert re.fullmatch(rf"Error: {winner} {LOCKED_BY}\n", err), results
    current = manage(data_dir, "sethostname")
    assert current.stdout.strip() in {f"host{n}.example.org" for n, user, *_ in results if user == winner}

"""certconfig: the certificate store from the console, as the ESA's, non-interactive."""

from __future__ import annotations

import os
from pathlib import Path

from appliance import audit, workflow
from appliance.audit import Action
from appliance.management.base import Refused, SubcommandCommand, read_passphrase_file
from appliance.roles import Capability, require
from certificates import downloads, pki, store
from certificates.models import Certificate


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise Refused(f'the file "{path}" does not exist') from None
    except IsADirectoryError:
        raise Refused(f'"{path}" is a folder, not a file') from None


class Command(SubcommandCommand):
    help = "Create, upload, import, export, renew and delete certificates (changes are staged; commit applies them)."

    def add_arguments(self, parser):
        action = self.subcommands(parser)

        action("list", "the certificates, as Network > Certificates lists them")
        action("print", "certificates by service; with NAME, one certificate in detail").add_argument(
            "name", nargs="?"
        )
        new = action("new", "create a self-signed certificate and a signing request")
        new.add_argument("name")
        new.add_argument("--cn", required=True, help="Common Name")
        new.add_argument("--org", default="", help="Organization")
        new.add_argument("--ou", default="", help="Organizational Unit")
        new.add_argument("--city", default="")
        new.add_argument("--state", default="")
        new.add_argument("--country", default="", help="two letters")
        new.add_argument("--days", type=int, default=3650, help="duration before expiration")
        new.add_argument("--san", action="append", default=[], help="a DNS name or IP address (repeatable)")
        new.add_argument("--key", choices=pki.KeyType.values, default=pki.KeyType.RSA2048)
        action("csr", "print the signing request (PEM)").add_argument("name")
        upload = action("upload", "upload the signed certificate (PEM, DER or PKCS#7)")
        upload.add_argument("name")
        upload.add_argument("--cert", required=True, metavar="PATH")
        upload.add_argument("--intermediates", metavar="PATH")
        paste = action("paste", "add a certificate with its private key and intermediates")
        paste.add_argument("name")
        paste.add_argument("--cert", required=True, metavar="PATH")
        paste.add_argument("--key", required=True, metavar="PATH")
        paste.add_argument("--key-passphrase-file", metavar="PATH")
        paste.add_argument("--intermediates", metavar="PATH")
        imported = action("import", "import a PKCS#12 file")
        imported.add_argument("name", nargs="?", default="", help="default: the certificate's Common Name")
        imported.add_argument("--pkcs12", required=True, metavar="PATH")
        imported.add_argument("--passphrase-file", metavar="PATH", help="omit for a file without a password")
        export = action("export", "write a PKCS#12 file with the private key")
        export.add_argument("name")
        export.add_argument("--pkcs12", required=True, metavar="PATH")
        export.add_argument("--passphrase-file", required=True, metavar="PATH")
        export.add_argument("--profile", choices=pki.Pkcs12Profile.values, default=pki.Pkcs12Profile.MODERN)
        renew = action("renew", "new self-signed certificate, or a new signing request for a CA-signed one")
        renew.add_argument("name")
        renew.add_argument("--new-key", action="store_true")
        action("delete", "delete a certificate no service uses").add_argument("name")

    @property
    def level(self) -> str:
        """The level whose certificates --mode sees."""
        return self.mode.seen("certificates")

    # --- reading ---------------------------------------------------------

    def do_list(self, user, **options):
        require(user, Capability.VIEW_CONFIG)
        used = store.where_used(self.mode)
        for entry in Certificate.objects.at(self.level):
            self.stdout.write(
                f"{entry.name}\t{entry.common_name}\t{entry.issuer}\t{entry.domains or '-'}\t"
                f"{entry.status.label}\t{entry.time_remaining.days} days\t{entry.not_after:%Y-%m-%d}\t"
                f"{', '.join(used.get(entry.name, [])) or '-'}"
            )

    def do_print(self, user, name, **options):
        require(user, Capability.VIEW_CONFIG)
        if name is None:  # the ESA's "Display certificates assigned to services"
            for certificate, users in sorted(store.where_used(self.mode).items()):
                for service in users:
                    self.stdout.write(f"{service}\t{certificate}")
            return
        entry = store.get(self.level, name)
        certificate = entry.certificate
        lines = [
            f"Name: {entry.name}",
            f"Status: {entry.status.label}",
            f"Subject: {certificate.subject.rfc4514_string()}",
            f"Issuer: {entry.issuer}",
            f"Domains: {entry.domains or '-'}",
            f"Not Valid Before: {entry.not_before:%Y-%m-%d %H:%M:%S} UTC",
            f"Not Valid After: {entry.not_after:%Y-%m-%d %H:%M:%S} UTC",
            f"Key: {pki.key_description(certificate.public_key())}",
            f"SHA-256: {pki.fingerprint(certificate)}",
            f"Signing request: {'pending' if entry.csr_pem else 'none'}",
            "Chain served:",
            *(f"  {n}. {c.subject.rfc4514_string()}" for n, c in enumerate([certificate, *entry.chain], 1)),
            *store.chain_notes(entry),
            f"Used by: {', '.join(store.users_of(self.mode, name)) or '-'}",
        ]
        self.stdout.write("\n".join(lines))

    def do_csr(self, user, name, **options):
        require(user, Capability.VIEW_CONFIG)
        entry = store.get(self.level, name)
        if not entry.csr_pem:
            raise Refused(f"'{name}' has no signing request (renew it to make one)")
        if downloads.record(entry, user):
            self.warn(
                f"'{name}' is not committed yet: commit before you send this request to a CA, "
                "or abandoning the changes destroys its private key"
            )
        self.stdout.write(entry.csr_pem.strip())

    # --- changing --------------------------------------------------------

    def do_new(self, user, name, cn, org, ou, city, state, country, days, san, key, **options):
        subject = pki.Subject(cn, org, ou, city, state, country.upper())
        made = pki.generate_key(key)  # seconds for RSA 4096: before the submit
        self.stage(
            user,
            f"created self-signed certificate {name}",
            lambda: store.create_self_signed(self.level, name, subject, days, san, key, made),
            f"Certificate {name} created with a signing request. Use commit to apply it.",
        )

    def do_upload(self, user, name, cert, intermediates, force, **options):
        certificate, chain = _read(cert), _read(intermediates) if intermediates else None

        def apply():
            outcome = store.upload_signed(self.level, name, certificate, accept_dates=force)
            if chain:
                added = store.add_intermediates(self.level, name, chain)
                outcome.notes += added.notes
            return outcome

        self.stage(
            user, f"uploaded the signed certificate of {name}", apply, f"Signed certificate of {name} staged."
        )

    def do_paste(self, user, name, cert, key, key_passphrase_file, intermediates, force, **options):
        certificate, private_key = _read(cert), _read(key).decode("utf-8", "replace")
        passphrase = read_passphrase_file(key_passphrase_file)
        chain = _read(intermediates) if intermediates else None
        self.stage(
            user,
            f"pasted certificate {name}",
            lambda: store.paste(
                self.level, name, certificate, private_key, passphrase, chain, accept_dates=force
            ),
            f"Certificate {name} staged. Use commit to apply it.",
        )

    def do_import(self, user, name, pkcs12, passphrase_file, force, **options):
        data, password = _read(pkcs12), read_passphrase_file(passphrase_file) or ""
        content = pki.read_pkcs12(data, password)  # decrypted before the submit, within the deadline
        imported = {}

        def apply():
            imported["name"], outcome = store.import_pkcs12(self.level, name, content, accept_dates=force)
            return outcome

        result = workflow.submit(user, "imported a PKCS#12 certificate", apply, "CLI", mode=self.mode)
        self.report(result, f"Certificate {imported.get('name', name)} imported. Use commit to apply it.")

    def do_renew(self, user, name, new_key, **options):
        key = store.renewal_key(self.level, name) if new_key else None  # made before the submit
        self.stage(
            user,
            f"renewed {name}",
            lambda: workflow.Outcome(notes=[store.renew(self.level, name, new_key, key)]),
            f"Renewal of {name} staged.",
        )

    def do_delete(self, user, name, **options):
        self.stage(
            user,
            f"deleted certificate {name}",
            lambda: store.delete(self.mode, name),
            f"Certificate {name} deleted.",
        )

    def do_export(self, user, name, pkcs12, passphrase_file, profile, **options):
        require(user, Capability.EXPORT_SECRETS)
        password = read_passphrase_file(passphrase_file)
        payload = store.export_pkcs12(self.level, name, password, profile)
        fd = os.open(pkcs12, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        audit.record(
            user.username,
            Action.EXPORT,
            f"exported certificate {name} with its private key (PKCS#12, {profile})",
            "CLI",
        )
        self.stdout.write(str(Path(pkcs12).resolve()))

from pathlib import Path

from appliance import configfile
from appliance.config.xmlfile import SecretMode
from appliance.management.base import ApplianceCommand, Refused, read_passphrase_file


def add_passphrase_arguments(parser, default=None):
    parser.add_argument(
        "--passphrases",
        choices=[SecretMode.MASK, SecretMode.ENCRYPT, SecretMode.PLAIN],
        default=default,
        required=default is None,
        help="mask, encrypt (needs --passphrase-file) or plain (Administrator only)",
    )
    parser.add_argument("--passphrase-file", help="first line is the passphrase, as openssl's file:")


def passphrase_options(passphrases, passphrase_file):
    mode = SecretMode(passphrases)
    passphrase = read_passphrase_file(passphrase_file)
    if mode is SecretMode.ENCRYPT and passphrase is None:
        raise Refused("--passphrases encrypt needs --passphrase-file")
    return mode, passphrase


class Command(ApplianceCommand):
    help = "Save the running configuration as an XML file; prints the saved path."

    def add_arguments(self, parser):
        add_passphrase_arguments(parser)
        parser.add_argument(
            "--file", help="where to write it (default: the appliance's configuration folder)"
        )

    def run(self, user, passphrases, passphrase_file, file, **options):
        mode, passphrase = passphrase_options(passphrases, passphrase_file)
        path = configfile.save_on_appliance(
            user, mode, passphrase, Path(file).resolve() if file else None, source="CLI"
        )
        if mode is SecretMode.PLAIN:
            self.warn("the file holds private keys in plain text")
        self.stdout.write(str(path))

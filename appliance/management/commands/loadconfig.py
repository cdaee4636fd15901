from pathlib import Path

from appliance import configfile
from appliance.management.base import ApplianceCommand, Refused, read_passphrase_file


class Command(ApplianceCommand):
    help = "Stage the sections of a configuration file (commit applies them)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the configuration XML file")
        parser.add_argument("--passphrase-file", help="for a file saved with encrypted passphrases")

    def run(self, user, path, passphrase_file, **options):
        passphrase = read_passphrase_file(passphrase_file)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise Refused(f'the file "{path}" does not exist') from None
        result = configfile.load(user, data, passphrase, f"loaded {Path(path).name}", source="CLI")
        self.report(result, "Values have been loaded. Use commit to apply them.")

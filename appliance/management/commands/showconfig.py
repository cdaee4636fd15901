from appliance import configfile
from appliance.config.xmlfile import SecretMode
from appliance.management.base import ApplianceCommand
from appliance.management.commands.saveconfig import add_passphrase_arguments, passphrase_options


class Command(ApplianceCommand):
    help = "Print the running configuration XML (passphrases masked unless asked otherwise)."

    def add_arguments(self, parser):
        add_passphrase_arguments(parser, default=SecretMode.MASK)

    def run(self, user, passphrases, passphrase_file, **options):
        mode, passphrase = passphrase_options(passphrases, passphrase_file)
        self.stdout.write(configfile.running_document(user, mode, passphrase, source="CLI"), ending="")

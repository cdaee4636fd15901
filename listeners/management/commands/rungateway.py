from appliance.management.base import ApplianceCommand
from listeners import gateway


class Command(ApplianceCommand):
    help = "Run the mail gateway: every committed listener, following each commit (runappliance starts it)."
    acts_as_user = False

    def handle(self, *args, **options):
        gateway.serve(write=lambda line: self.stdout.write(line) or self.stdout.flush())

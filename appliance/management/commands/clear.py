from appliance import workflow
from appliance.management.base import ApplianceCommand


class Command(ApplianceCommand):
    help = "Abandon the uncommitted changes, as the ESA's clear. Another user's need --force."

    def run(self, user, force, **options):
        owner = workflow.abandon(user, source="CLI", others=force, confirmed=force)
        if not owner:
            self.stdout.write("No changes to commit.")
            return
        if owner != user.username:
            self.warn(f"abandoned the uncommitted changes of {owner}")
        self.stdout.write("Changes cleared.")

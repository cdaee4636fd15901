from appliance import workflow
from appliance.management.base import ApplianceCommand, Refused


class Command(ApplianceCommand):
    help = "Abandon the uncommitted changes, as the ESA's clear. Another user's need --force."

    def run(self, user, force, **options):
        lock = workflow.lock_state()
        if lock.owner_name and lock.owner_name != user.username and not force:
            raise Refused(
                f"the uncommitted changes belong to {lock.owner_name}; "
                "use --force to abandon them (Administrators only)"
            )
        if not workflow.abandon(user, source="CLI"):
            self.stdout.write("No changes to commit.")
            return
        if lock.owner_name != user.username:
            self.warn(f"abandoned the uncommitted changes of {lock.owner_name}")
        self.stdout.write("Changes cleared.")

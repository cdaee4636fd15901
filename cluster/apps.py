from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "cluster"
    verbose_name = "Centralized Management"

    def ready(self):
        from appliance import supervisor
        from appliance.config.sections import registry
        from appliance.navigation import register
        from cluster import levels, membership, propagation, sections

        sections.register_sections()
        registry.level_store = levels.CandidateLevels()
        supervisor.register_membership(
            supervisor.Membership(
                require_joined=membership.require_joined,
                check_in=membership.check_in,
                check_in_seconds=membership.CHECK_IN_SECONDS,
                stopped=membership.stopped,
                commit_waiter=propagation.CommitWaiter,
            )
        )

        register(
            "System Administration",
            "Cluster Management",
            "cluster:machines",
            position=15,
            help="guide#system-administration-cluster-management",
        )

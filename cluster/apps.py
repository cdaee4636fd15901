from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "cluster"
    verbose_name = "Centralized Management"

    def ready(self):
        from appliance.config.sections import registry
        from appliance.navigation import register
        from cluster import levels, sections

        sections.register_sections()
        registry.level_store = levels.CandidateLevels()

        register(
            "System Administration",
            "Cluster Management",
            "cluster:machines",
            position=15,
            help="guide#system-administration-cluster-management",
        )

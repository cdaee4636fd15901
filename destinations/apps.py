from django.apps import AppConfig


class DestinationsConfig(AppConfig):
    """Every connection the appliance makes outward: outgoing TLS (Destination Controls), LDAP,
    the URL filtering service, SMTP routes, the Mail Delivery settings."""

    name = "destinations"
    verbose_name = "Destinations"

    def ready(self):
        from appliance import navigation
        from appliance.config import levels
        from destinations import routes, sections

        sections.register_sections()
        routes.register_section()
        navigation.register(
            "Mail Policies",
            "Destination Controls",
            "destinations:destination_controls",
            position=40,
            help="guide#mail-policies-destination-controls",
            feature="destination_controls",
        )
        navigation.register(
            "Security Services",
            "URL Filtering",
            "destinations:url_filtering",
            position=30,
            help="guide#security-services-url-filtering",
            feature=levels.CLUSTER_ONLY,
        )
        navigation.register(
            "System Administration",
            "LDAP",
            "destinations:ldap",
            position=25,
            help="guide#system-administration-ldap",
            feature="ldap",
        )
        navigation.register(
            "Network",
            "SMTP Routes",
            "destinations:smtp_routes",
            position=20,
            help="guide#network-smtp-routes",
            feature=levels.CLUSTER_ONLY,
        )
        navigation.register(
            "Network",
            "Mail Delivery",
            "destinations:mail_delivery",
            position=20,
            help="guide#network-mail-delivery",
            feature=levels.CLUSTER_ONLY,
        )

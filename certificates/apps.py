from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    name = "certificates"
    verbose_name = "Certificates"

    def ready(self):
        from appliance import bootstrap, navigation
        from appliance.config import levels
        from certificates import sections, store

        sections.register_sections()
        bootstrap.register_first_start(store.create_demo_certificate)
        navigation.register(
            "Network",
            "Certificates",
            "certificates:list",
            position=20,
            help="guide#network-certificates",
            feature="certificates",
        )
        navigation.register_help("certificates:detail", "guide#certificate-page-and-diagnostics")
        navigation.register(
            "Network",
            "Certificate Authorities",
            "certificates:authorities",
            position=21,
            help="guide#network-certificate-authorities",
            feature=levels.CLUSTER_ONLY,
        )

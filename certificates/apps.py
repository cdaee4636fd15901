from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    name = "certificates"
    verbose_name = "Certificates"

    def ready(self):
        from appliance import bootstrap, navigation
        from certificates import sections

        sections.register_sections()
        bootstrap.register_first_start(sections.create_demo_certificate)
        navigation.register("Network", "Certificates", "certificates:list", position=20)

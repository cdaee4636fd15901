from django.apps import AppConfig


class ApplianceConfig(AppConfig):
    name = "appliance"
    verbose_name = "Appliance"

    def ready(self):
        from appliance import alerts, navigation, sections

        sections.register_sections()
        alerts.register_section()
        navigation.register_core_pages()

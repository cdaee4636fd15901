from django.apps import AppConfig


class ApplianceConfig(AppConfig):
    name = "appliance"
    verbose_name = "Appliance"

    def ready(self):
        from appliance import navigation, sections

        sections.register_sections()
        navigation.register_core_pages()

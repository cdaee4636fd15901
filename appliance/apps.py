from django.apps import AppConfig


class ApplianceConfig(AppConfig):
    name = "appliance"
    verbose_name = "Appliance"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from appliance import alerts, navigation, sections, sessions

        user_logged_in.connect(sessions.mark_login)
        sections.register_sections()
        alerts.register_section()
        navigation.register_core_pages()

from django.apps import AppConfig


class ListenersConfig(AppConfig):
    """Listeners (Network > Listeners, listenerconfig, ``<listeners>``); HAT and inbound SMTP to come."""

    name = "listeners"
    verbose_name = "Listeners"

    def ready(self):
        from appliance import bootstrap, navigation
        from listeners import sections, store

        sections.register_sections()
        bootstrap.register_first_start(store.create_default_listener)
        navigation.register("Network", "Listeners", "listeners:list", position=15)

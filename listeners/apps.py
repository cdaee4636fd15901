from django.apps import AppConfig


class ListenersConfig(AppConfig):
    """Listeners (Network > Listeners, listenerconfig, ``<listeners>``), their HAT (mail flow policies,
    sender groups), RAT and address lists: configuration only; ``gateway`` runs them."""

    name = "listeners"
    verbose_name = "Listeners"

    def ready(self):
        from appliance import bootstrap, navigation
        from appliance.config import levels
        from listeners import address_lists, sections, store

        sections.register_sections()
        address_lists.register_section()
        bootstrap.register_first_start(store.create_default_listener)
        navigation.register(
            "Network",
            "Listeners",
            "listeners:list",
            position=15,
            help="guide#network-listeners",
            feature="listeners",
        )
        navigation.register(
            "Mail Policies",
            "HAT Overview",
            "listeners:hat",
            position=30,
            help="guide#mail-policies-hat-overview",
            feature="listeners",
        )
        navigation.register(
            "Mail Policies",
            "Mail Flow Policies",
            "listeners:policies",
            position=31,
            help="guide#mail-policies-mail-flow-policies",
            feature="listeners",
        )
        navigation.register(
            "Mail Policies",
            "Recipient Access Table",
            "listeners:rat",
            position=32,
            help="guide#mail-policies-recipient-access-table",
            feature="listeners",
        )
        navigation.register(
            "Mail Policies",
            "Address Lists",
            "listeners:address_lists",
            position=50,
            help="guide#mail-policies-address-lists",
            feature=levels.CLUSTER_ONLY,
        )

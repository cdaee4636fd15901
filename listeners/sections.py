"""The ``<listeners>`` configuration section; listeners' sockets join the check across services."""

from __future__ import annotations

from appliance.config import checks
from appliance.config.sections import Config, Field, Item, Kind, Section, registry
from appliance.validators import validate_object_name
from listeners import store
from listeners.models import PORT_MAX, PORT_MIN, Listener

NETWORK = "Network Configuration"

LISTENER_FIELDS = {
    "listener_name": "name",
    "listener_type": "listener_type",
    "interface_name": "interface_name",
    "port": "port",
    "certificate_name": "certificate_name",
}


def _read_listeners() -> list[Item]:
    return [
        {tag: getattr(listener, attribute) for tag, attribute in LISTENER_FIELDS.items()}
        for listener in Listener.objects.all()
    ]


def _write_listeners(items: list[Item]) -> None:
    Listener.objects.all().delete()
    Listener.objects.bulk_create(
        Listener(**{attribute: item[tag] for tag, attribute in LISTENER_FIELDS.items()}) for item in items
    )


def validate_listener_type(value: str) -> None:
    if value not in Listener.Type.values:
        raise ValueError(f"{value!r} is not a type of listener ({' or '.join(Listener.Type.values)})")


def _interface_hostname(item: Item, config: Config) -> list[str]:
    """The name a listener's certificate should cover: its interface's hostname."""
    interface = store.interface_named(item["interface_name"], config.get("interfaces", []))
    return [interface["interface_hostname"]] if interface else []


def register_sections() -> None:
    registry.register(
        Section(
            tag="listeners",
            title="Listeners",
            heading=NETWORK,
            position=15,
            item_tag="listener",
            key="listener_name",
            fields=(
                Field("listener_name", "Name", validate=validate_object_name),
                Field("listener_type", "Type of Listener", validate=validate_listener_type),
                Field("interface_name", "Interface", references="interfaces"),
                Field("port", "Port", Kind.INT, minimum=PORT_MIN, maximum=PORT_MAX),
                Field(
                    "certificate_name",
                    "Certificate",
                    default="",
                    references="certificates",
                    covers=_interface_hostname,
                ),
            ),
            read=_read_listeners,
            write=_write_listeners,
        )
    )
    checks.register_sockets(store.listener_sockets)

"""The ``<listeners>`` configuration section; listeners' sockets join the check across services.

Each ``<listener>`` holds its ``<mail_flow_policies>`` (the policies and one
``<default_policy_parameters>``) and its ``<hat>`` of ordered ``<sender_group>``
elements; a listener without them gets the predefined ones of its type.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Prefetch

from appliance import interfaces
from appliance.config import checks, levels
from appliance.config.sections import Config, Field, Item, Kind, Section, registry
from appliance.validators import choice_validator, validate_object_name
from listeners import hat, rat, senders, store
from listeners.models import (
    DEFAULT_LIMITS,
    LIMIT_LABELS,
    LIMITS,
    POLICY_LIMITS,
    PORT_MAX,
    PORT_MIN,
    ConnectionBehavior,
    InboundTls,
    Listener,
    SenderEntry,
    SenderGroup,
)

NETWORK = "Network Configuration"

LISTENER_FIELDS = {
    "listener_name": "name",
    "listener_type": "listener_type",
    "interface_name": "interface_name",
    "port": "port",
    "certificate_name": "certificate_name",
    "max_concurrency": "max_concurrency",
    "max_tls_concurrency": "max_tls_concurrency",
}


DEFAULT_PARAMETER_FIELDS = {
    "tls": "default_tls",
    "tls_verify_client": "default_tls_verify_client",
    "tls_mandatory_address_list": "default_tls_mandatory_address_list",
    **{tag: f"default_{tag}" for tag in POLICY_LIMITS},
}


def _read_listeners(level: str) -> list[Item]:
    """Every listener of ``level`` with its policies, HAT and RAT: five queries, however long the HAT
    (whose senders are read as values, not as thousands of model instances)."""
    listeners = Listener.objects.at(level).prefetch_related(
        "policies", "rat_entries", Prefetch("sender_groups", SenderGroup.objects.order_by("position"))
    )
    hosts: dict[int, list[str]] = defaultdict(list)
    for group_id, host in SenderEntry.objects.order_by("group_id", "position").values_list(
        "group_id", "host"
    ):
        hosts[group_id].append(host)
    return [
        {
            **_own_fields(listener),
            "mail_flow_policy": [hat.policy_item(policy) for policy in listener.policies.all()],
            "default_policy_parameters": hat.default_parameters_item(listener),
            "sender_group": [
                {
                    "sender_group_name": group.name,
                    "policy": group.policy_name,
                    "comment": group.comment,
                    "host": hosts[group.id],
                }
                for group in listener.sender_groups.all()
            ],
            "rat_entry": [{"recipient": e.recipient, "action": e.action} for e in listener.rat_entries.all()],
        }
        for listener in listeners
    ]


def _own_fields(listener: Listener) -> Item:
    return {tag: getattr(listener, attribute) for tag, attribute in LISTENER_FIELDS.items()}


def _read_listener_rows(level: str) -> list[Item]:
    """The listeners of ``level`` without their policies, HAT and RAT: one query."""
    return [_own_fields(listener) for listener in Listener.objects.at(level)]


def _write_listeners(items: list[Item], level: str) -> None:
    Listener.objects.at(level).delete()
    rows = Listener.objects.at(level).bulk_create(
        Listener(
            **{attribute: item[tag] for tag, attribute in LISTENER_FIELDS.items()},
            **{
                attribute: item["default_policy_parameters"][tag]
                for tag, attribute in DEFAULT_PARAMETER_FIELDS.items()
            },
        )
        for item in items
    )
    hat.write_policies_and_hat(list(zip(rows, items, strict=True)))


def validate_listener_type(value: str) -> None:
    if value not in Listener.Type.values:
        raise ValueError(f"{value!r} is not a type of listener ({' or '.join(Listener.Type.values)})")


def _interface_hostname(item: Item, config: Config) -> list[str]:
    """The name a listener's certificate should cover: its interface's hostname."""
    interface = interfaces.named(item["interface_name"], config.get("interfaces", []))
    return [interface["interface_hostname"]] if interface else []


def _limit(tag: str, default=None) -> Field:
    low, high = LIMITS[tag]
    return Field(tag, LIMIT_LABELS[tag], Kind.INT, default=default, minimum=low, maximum=high)


def _tls_fields(default_tls: str) -> tuple[Field, ...]:
    """The TLS settings a policy and the Default Policy Parameters share."""
    return (
        Field(
            "tls",
            "TLS",
            default=default_tls,
            validate=choice_validator(InboundTls),
            summarize=_label(InboundTls),
        ),
        Field("tls_verify_client", "Verify Client Certificate", Kind.BOOL, default=False),
        Field(
            "tls_mandatory_address_list",
            "TLS is Mandatory for Address List",
            default="",
            references="address_lists",
        ),
    )


def _label(choices):
    return lambda value: choices(value).label if value in choices.values else str(value)


MAIL_FLOW_POLICY = Field(
    "mail_flow_policy",
    "Mail Flow Policy",
    Kind.ITEMS,
    container="mail_flow_policies",
    child_key="policy_name",
    children=(
        Field("policy_name", "Name", validate=validate_object_name),
        Field(
            "connection_behavior",
            "Connection Behavior",
            validate=choice_validator(ConnectionBehavior),
            summarize=_label(ConnectionBehavior),
        ),
        *_tls_fields(InboundTls.DEFAULT),
        *(_limit(tag) for tag in POLICY_LIMITS),  # absent: Use Default
    ),
)
DEFAULT_POLICY_PARAMETERS = Field(
    "default_policy_parameters",
    "Default Policy Parameters",
    Kind.GROUP,
    container="mail_flow_policies",
    children=(*_tls_fields(InboundTls.OFF), *(_limit(tag, DEFAULT_LIMITS[tag]) for tag in POLICY_LIMITS)),
)
RAT_ENTRY = Field(
    "rat_entry",
    "RAT Entry",
    Kind.ITEMS,
    container="rat",
    child_key="recipient",
    children=(
        Field("recipient", "Recipient", validate=rat.validate_written),
        Field("action", "Action", validate=choice_validator(rat.Action), summarize=_label(rat.Action)),
    ),
)
SENDER_GROUP = Field(
    "sender_group",
    "Sender Group",
    Kind.ITEMS,
    container="hat",
    child_key="sender_group_name",
    children=(
        Field("sender_group_name", "Name", validate=validate_object_name),
        Field("policy", "Policy"),
        Field("comment", "Comment", default=""),
        Field("host", "Senders", repeated=True, validate=senders.validate_written),
    ),
)


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
                _limit("max_concurrency", DEFAULT_LIMITS["max_concurrency"]),
                _limit("max_tls_concurrency", DEFAULT_LIMITS["max_tls_concurrency"]),
                MAIL_FLOW_POLICY,
                DEFAULT_POLICY_PARAMETERS,
                SENDER_GROUP,
                RAT_ENTRY,
            ),
            read=_read_listeners,
            read_top=_read_listener_rows,
            write=_write_listeners,
            clean_item=lambda item: hat.listener_problems(item) + rat.problems(item),
        )
    )
    # A listener's HAT (mail flow policies, sender groups) and RAT are its own: they move with it.
    registry.register_feature(levels.Feature("listeners", "Listeners", ("listeners",)))
    checks.register_sockets(store.listener_sockets)
    checks.register_warning(hat.required_tls_without_certificate)

"""The Destination Controls table: its entries as rows, as ``<destination>`` items, and their rules.

One ``Entry`` is what a form, the console, an imported line and a ``<destination>``
element all give; ``problems`` checks it in the administrator's words, and
``replace_table`` writes a whole table in a few queries (10,000 entries in one
step), re-creating the Default entry if the table lacks it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from destinations.models import (
    DEFAULT_DESTINATION,
    LIMITS,
    SHIPPED_DEFAULT,
    Destination,
    IpPreference,
    LimitsApplyTo,
    TlsSupport,
)

# <destination> element → Entry attribute (and Destination column).
ELEMENTS = {
    "destination_name": "name",
    "tls": "tls",
    "ip_sort_pref": "ip_preference",
    "max_host_concurrency": "max_connections",
    "max_messages_per_connection": "max_messages_per_connection",
    "max_recipients_per_minute": "max_recipients_per_minute",
    "limits_apply_to": "limits_apply_to",
}
LABELS = {
    "name": "Destination",
    "tls": "TLS Support",
    "ip_preference": "IP Address Preference",
    "max_connections": "Concurrent Connections",
    "max_messages_per_connection": "Maximum Messages Per Connection",
    "max_recipients_per_minute": "Recipients per Minute",
    "limits_apply_to": "Apply Limits Per Destination",
}
CHOICES = {"tls": TlsSupport, "ip_preference": IpPreference, "limits_apply_to": LimitsApplyTo}


@dataclass
class Entry:
    """One destination's settings; None (and TLS ``default``) take the Default entry's."""

    name: str
    tls: str = TlsSupport.DEFAULT
    ip_preference: str | None = None
    max_connections: int | None = None
    max_messages_per_connection: int | None = None
    # On the Default entry None is No Limit.
    max_recipients_per_minute: int | None = None
    limits_apply_to: str | None = None

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_DESTINATION

    @classmethod
    def shipped_default(cls) -> Entry:
        return cls(DEFAULT_DESTINATION, **SHIPPED_DEFAULT)

    @classmethod
    def of(cls, row: Destination) -> Entry:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    def filled(self) -> Entry:
        """The Default entry with what it leaves out taken from the shipped one (a partial file)."""
        if not self.is_default:
            return self
        values = asdict(self)
        for name, shipped in SHIPPED_DEFAULT.items():
            if values[name] is None and name != "max_recipients_per_minute":  # None there: No Limit
                values[name] = shipped
        return Entry(**values)


def problems(entry: Entry) -> list[str]:
    """What makes ``entry`` invalid (its name is checked where it is typed: ``canonical_destination``)."""
    found = []
    for name, choices in CHOICES.items():
        value = getattr(entry, name)
        if value is not None and value not in choices.values:
            found.append(f"{LABELS[name]} must be one of {', '.join(choices.values)}, not {value!r}")
    for name, (low, high) in LIMITS.items():
        value = getattr(entry, name)
        if value is not None and not low <= value <= high:
            found.append(f"{LABELS[name]} must be between {low:,} and {high:,}, not {value:,}")
    if entry.is_default:
        if entry.tls == TlsSupport.DEFAULT:
            found.append(
                "The Default entry's TLS Support cannot be Default: it is the setting the other "
                "entries' Default refers to; choose None, Preferred, Required, Preferred - Verify "
                "or Required - Verify"
            )
        for name in ("ip_preference", "max_connections", "max_messages_per_connection", "limits_apply_to"):
            if getattr(entry, name) is None:
                found.append(f"The Default entry needs its own {LABELS[name]}: it has no Default to use")
    return found


# --- items of the configuration file ----------------------------------------------------


def to_item(entry: Entry) -> dict:
    return {tag: getattr(entry, attribute) for tag, attribute in ELEMENTS.items()}


def from_item(item: dict) -> Entry:
    """A ``<destination>`` as parsed; an element left out takes the Default entry's (or, there, the shipped)."""
    values = {attribute: item.get(tag) for tag, attribute in ELEMENTS.items()}
    values = {key: None if value == "" else value for key, value in values.items()}
    entry = Entry(**values).filled()
    entry.tls = entry.tls or TlsSupport.DEFAULT
    return entry


def sort_key(name: str) -> tuple[bool, str]:
    """The Default entry first, then the others by name (the file's order)."""
    return name != DEFAULT_DESTINATION, name


def read_items(level: str) -> list[dict]:
    """The candidate table of ``level`` as ``<destination>`` items; the Default entry is there even if its
    row is not."""
    rows = Destination.objects.at(level).values_list(*ELEMENTS.values())
    items = [dict(zip(ELEMENTS, row, strict=True)) for row in rows]
    if not any(item["destination_name"] == DEFAULT_DESTINATION for item in items):
        items.append(to_item(Entry.shipped_default()))
    items.sort(key=lambda item: sort_key(item["destination_name"]))
    return items


def replace_table(level: str, entries: list[Entry]) -> None:
    """Make the candidate table of ``level`` hold exactly ``entries`` (the Default entry re-created if
    they lack it)."""
    if not any(entry.is_default for entry in entries):
        entries = [Entry.shipped_default(), *entries]
    table = Destination.objects.at(level)
    table.delete()
    table.bulk_create(Destination(**vars(entry)) for entry in entries)  # no asdict deep copies


def default_row(level: str) -> Destination:
    """The Default entry's row of ``level`` (made with the shipped settings if missing)."""
    return Destination.objects.at(level).get_or_create(name=DEFAULT_DESTINATION, defaults=SHIPPED_DEFAULT)[0]


def shown(attribute: str, value, on_default: bool = False) -> str:
    """A setting as the table shows it: a label, a number, Default (the Default entry's) or No Limit."""
    if value is None:
        return "No Limit" if on_default and attribute == "max_recipients_per_minute" else "Default"
    if attribute in CHOICES:
        return CHOICES[attribute](value).label
    return f"{value:,}" if isinstance(value, int) else str(value)

"""Which Destination Controls entry applies to a recipient: exact domain > longest ``.subdomain`` > Default.

The lookup is one indexed query whatever the size of the table: the names that
could match (the domain itself and ``.`` + each parent suffix, or the address of
an IP literal) are asked for with ``name__in`` on the unique name index, and the
most specific found wins. ``.example.com`` covers every host below example.com,
not example.com itself. ``entry_for`` reads the candidate table, as the page and
``destconfig lookup`` show it; ``match_in`` a configuration's items (delivery: the running one,
indexed once per version).
"""

from __future__ import annotations

from dataclasses import dataclass

from destinations import entries
from destinations.entries import Entry
from destinations.models import DEFAULT_DESTINATION, Destination, TlsSupport, is_ip_name
from destinations.validators import canonical_destination


def destination_of(address_or_domain: str) -> str:
    """The domain or IP address mail to ``address_or_domain`` goes to, as entries name it.

    ``user@Host.Example.com`` → ``host.example.com``; ``user@[192.0.2.1]`` and
    ``user@[IPv6:2001:db8::1]`` → the address. ValueError if it is neither.
    """
    text = address_or_domain.strip().removeprefix("<").removesuffix(">")
    domain = text.rpartition("@")[2]
    if not domain:
        raise ValueError(f"{address_or_domain!r} has no domain after the @")
    try:
        name = canonical_destination(domain)
    except ValueError:
        raise ValueError(
            f"{address_or_domain!r} is not an address (user@example.com, user@[192.0.2.1]) or a domain"
        ) from None
    if name.startswith("."):
        raise ValueError(f"{address_or_domain!r} is a subdomain form: give an address or a host name")
    return "default" if name == DEFAULT_DESTINATION else name


def candidate_names(destination: str) -> list[str]:
    """The entry names that could apply to ``destination``, most specific first."""
    if is_ip_name(destination):
        return [destination]
    labels = destination.split(".")
    return [destination] + ["." + ".".join(labels[i:]) for i in range(1, len(labels))]


@dataclass(frozen=True)
class Match:
    """The entry that applies to a destination, and the settings that follow from it."""

    destination: str
    entry: Entry
    default: Entry

    @property
    def kind(self) -> str:
        if self.entry.is_default:
            return "default"
        if self.entry.name.startswith("."):
            return "subdomain"
        return "ip" if is_ip_name(self.entry.name) else "exact"

    @property
    def reason(self) -> str:
        """Why this entry, in words."""
        name = self.entry.name
        return {
            "exact": f"the entry for {name} itself",
            "ip": f"the entry for the address [{name}]",
            "subdomain": f"the subdomain entry {name}, the longest one covering {self.destination}",
            "default": f"no entry covers {self.destination}: the Default entry",
        }[self.kind]

    @property
    def tls(self) -> TlsSupport:
        """The effective TLS Support: an entry's ``default`` is the Default entry's."""
        own = self.entry.tls
        return TlsSupport(self.default.tls if own == TlsSupport.DEFAULT else own)

    def effective(self, attribute: str):
        """A setting as delivery uses it: the entry's own, else the Default entry's (None: No Limit)."""
        value = getattr(self.entry, attribute)
        return getattr(self.default, attribute) if value is None else value


def entry_for(level: str, address_or_domain: str) -> Match:
    """The entry of ``level``'s candidate table for a recipient address, a domain or an IP literal
    (ValueError if it is none of these)."""
    destination = destination_of(address_or_domain)
    names = candidate_names(destination)
    table = Destination.objects.at(level)
    rows = {row.name: row for row in table.filter(name__in=[*names, DEFAULT_DESTINATION])}
    default = Entry.of(rows[DEFAULT_DESTINATION]) if DEFAULT_DESTINATION in rows else Entry.shipped_default()
    found = next((Entry.of(rows[name]) for name in names if name in rows), default)
    return Match(destination, found, default)


_running_index: dict[str, tuple[object, dict[str, Entry]]] = {}


def match_in(config, address_or_domain: str) -> Match:
    """``entry_for`` on a configuration's ``<destination>`` items (delivery: the running one)."""
    destination = destination_of(address_or_domain)
    [controls] = config.get("destination_controls") or [{"destination": []}]
    cached = _running_index.get("index")
    if cached is None or cached[0] is not controls:
        index = {item["destination_name"]: entries.from_item(item) for item in controls["destination"]}
        _running_index["index"] = cached = (controls, index)
    index = cached[1]
    default = index.get(DEFAULT_DESTINATION) or Entry.shipped_default()
    found = next((index[name] for name in candidate_names(destination) if name in index), default)
    return Match(destination, found, default)

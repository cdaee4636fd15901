"""Sender group entries in the ESA's syntax, and what each covers.

  ``10.1.1.1``, ``2001:db8::1``          one address;
  ``10.1.0.0/16``, ``2001:db8::/32``     a CIDR block (no host bits set);
  ``10.1.1.1-50``                        a range in the last octet;
  ``10.1.1.1-10.1.2.200``, ``a::1-a::9``  a range between two addresses;
  ``10.1.``, ``10.1.1.``                 a partial IPv4 address: every address that begins so;
  ``mail.example.com``                   a host name (the sender's verified reverse DNS name);
  ``.example.com``                       every host name below example.com (not example.com itself);
  ``ALL``                                every host: the last group of every HAT, and only it.

An address form covers a range, kept as two 32-digit hex numbers in IPv6 space
(IPv4 as ``::ffff:a.b.c.d``) so that a database index or a sorted list finds the
groups holding an address; a name form is matched through ``name_keys()``.
SenderBase forms (``SBRS[…]``, ``SBO:``, ``dnslist[…]``) need a reputation
service this appliance does not use, and are refused as such.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

ALL = "ALL"
FORMS = (
    "an IP address, CIDR block (10.1.0.0/16), range (10.1.1.1-50), partial address (10.1.), "
    "host name (mail.example.com) or .domain (.example.com)"
)
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_REPUTATION = re.compile(r"^(sbrs\[|sbo:|dnslist\[|country\[|geo\[)", re.IGNORECASE)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Sender:
    """A parsed entry: its canonical text and, for the address forms, the range it covers (hex)."""

    host: str
    range_start: str = ""
    range_end: str = ""

    @property
    def is_address(self) -> bool:
        return bool(self.range_start)


def address_key(address: Address) -> str:
    """An address as 32 hex digits in IPv6 space, so IPv4 and IPv6 compare in one column."""
    if address.version == 4:
        address = ipaddress.IPv6Address(f"::ffff:{address}")
    return f"{int(address):032x}"


def _covering(first: Address, last: Address, text: str) -> Sender:
    return Sender(text, address_key(first), address_key(last))


def _ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _hostname(text: str, labels_needed: int = 2) -> bool:
    labels = text.split(".")
    return len(text) <= 253 and len(labels) >= labels_needed and all(_LABEL.match(label) for label in labels)


@functools.lru_cache(maxsize=65536)
def parse_sender(text: str) -> Sender:
    """``text`` as a sender entry in canonical form; ValueError in the admin's words if it is none.

    Remembered (a ``Sender`` is frozen): a load checks each of thousands of senders three times."""
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    if text.upper() == ALL:
        return Sender(ALL)
    if _REPUTATION.match(text):
        raise ValueError(
            f"{text!r} needs SenderBase reputation, which this appliance does not use; give {FORMS}"
        )
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            hint = ""
            try:
                hint = f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
            except ValueError:
                pass
            reason = "has host bits set" if hint else f"is not a CIDR block ({exc})"
            raise ValueError(f"{text!r} {reason}{hint}") from None
        return _covering(network[0], network[-1], str(network))
    if "-" in text and (_ip(text.partition("-")[0]) is not None):
        return _range(text)
    if (address := _ip(text)) is not None:
        address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:10.1.1.1 is 10.1.1.1
        return _covering(address, address, str(address))
    if re.fullmatch(r"(\d{1,3}\.){1,3}", text):
        octets = [int(octet) for octet in text.rstrip(".").split(".")]
        if any(octet > 255 for octet in octets):
            raise ValueError(f"{text!r} is not a partial IPv4 address (each part 0 to 255)")
        network = ipaddress.ip_network(
            ".".join(map(str, octets + [0] * (4 - len(octets)))) + f"/{8 * len(octets)}"
        )
        return _covering(network[0], network[-1], text)
    name = text.lower().removesuffix(".")
    numeric = name.rpartition(".")[2].isdigit()  # "10.1" is an address cut short, not a host name
    if not numeric and (_hostname(name[1:], labels_needed=1) if name.startswith(".") else _hostname(name)):
        return Sender(name)
    raise ValueError(f"{text!r} is not a sender entry; give {FORMS}")


def _range(text: str) -> Sender:
    first_text, _, last_text = text.partition("-")
    first = ipaddress.ip_address(first_text)
    if first.version == 4 and last_text.isdigit():
        if int(last_text) > 255:
            raise ValueError(f"{text!r}: the range ends at {last_text}, beyond 255")
        last = ipaddress.IPv4Address(int(first) - int(first) % 256 + int(last_text))
    elif (last := _ip(last_text)) is None or last.version != first.version:
        raise ValueError(
            f"{text!r} is not a range: give 10.1.1.1-50, or two addresses of one kind (10.1.1.1-10.1.2.200)"
        )
    if last < first:
        raise ValueError(f"{text!r} is not a range: it ends before it starts")
    end = str(int(last_text)) if last_text.isdigit() else str(last)
    return _covering(first, last, f"{first}-{end}")


def name_keys(hostname: str) -> list[str]:
    """The entries a (verified) host name matches: itself and ``.`` + each domain above it."""
    name = hostname.strip().lower().rstrip(".")
    if not name:
        return []
    labels = name.split(".")
    return [name] + ["." + ".".join(labels[i:]) for i in range(1, len(labels))]


def validate_written(value: str) -> None:
    """A ``<host>`` as written in a configuration file: a sender entry in its canonical form."""
    canonical = parse_sender(value).host
    if canonical != value:
        raise ValueError(f"{value!r} must be written as {canonical!r}")

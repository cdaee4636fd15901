"""Mail Policies > Recipient Access Table: which recipients a public listener accepts mail for.

Entries are read from the top, the first that covers the recipient decides:

  ``example.com``       every address at example.com (not its subdomains);
  ``.example.com``      every address at a subdomain of example.com;
  ``user@example.com``  that address;
  ``user@``             that user part at any domain;
  ``ALL``               every recipient: the last entry of every RAT, and only there.

Each says Accept or Reject; a rejected recipient gets ``550 5.7.1 Recipient
address rejected``. A sender whose mail flow policy says Relay skips the RAT
(private listeners relay for their RELAYLIST hosts; they have no RAT). A new
public listener accepts mail for the domain of the appliance's hostname.
"""

from __future__ import annotations

from django.db.models import TextChoices

from appliance.config.sections import Item
from appliance.workflow import ChangeRefused
from listeners import address_lists
from listeners.models import Listener, RatEntry

ALL = "ALL"
FORMS = "example.com, .example.com, user@example.com, user@ or ALL"


class Action(TextChoices):
    ACCEPT = "accept", "Accept"
    REJECT = "reject", "Reject"


def _as_address_list_entry(entry: str) -> str:
    """The Address Lists form of a RAT entry, whose checks and matching it shares (``.x`` is ``@.x``)."""
    return "@" + entry if entry.startswith(".") else entry


def canonical_recipient(text: str) -> str:
    """``text`` as a RAT entry in its written form (lower case); ValueError in the admin's words."""
    value = text.strip()
    if value.upper() == ALL:
        return ALL
    value = value.lower()
    try:
        address_lists.validate_entry(_as_address_list_entry(value))
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a recipient entry ({FORMS})") from None
    return value


def validate_written(value: str) -> None:
    """A ``<recipient>`` as written in a configuration file: an entry in its canonical form."""
    canonical = canonical_recipient(value)
    if canonical != value:
        raise ValueError(f"{value!r} must be written as {canonical!r}")


def covers(entry: str, address: str) -> bool:
    return entry == ALL or address_lists.entry_matches(_as_address_list_entry(entry), address)


def decide(entries: list[Item], address: str) -> Item | None:
    """The first entry covering ``address`` (None: no entry does, which a RAT ending in ALL prevents)."""
    return next((entry for entry in entries if covers(entry["recipient"], address)), None)


def problems(listener: Item) -> list[tuple[tuple[str, int], str]]:
    """The RAT's rules on one listener, as ((element, entry index), message)."""
    entries = listener.get("rat_entry") or []
    if listener["listener_type"] == "private":
        return (
            [(("rat_entry", 0), "A private listener has no RAT: it relays for its RELAYLIST hosts")]
            if entries
            else []
        )
    found, seen = [], set()
    for index, entry in enumerate(entries):
        if entry["recipient"] in seen:
            found.append((("rat_entry", index), f"The recipient {entry['recipient']!r} is listed twice"))
        seen.add(entry["recipient"])
        if entry["recipient"] == ALL and index != len(entries) - 1:
            found.append((("rat_entry", index), "ALL must be the last entry of the RAT"))
    if entries and entries[-1]["recipient"] != ALL:
        found.append((("rat_entry", len(entries) - 1), "The last entry of the RAT must be ALL"))
    return found


def when_absent(listener_type: str) -> list[Item]:
    """The RAT of a public listener that a file gives none: ALL Reject (no mail until domains are added)."""
    return [] if listener_type == "private" else [{"recipient": ALL, "action": Action.REJECT}]


def rows(listener, entries: list[Item]) -> list[RatEntry]:
    return [
        RatEntry(listener=listener, position=position, recipient=entry["recipient"], action=entry["action"])
        for position, entry in enumerate(entries)
    ]


def shipped(listener_type: str, hostname: str) -> list[Item]:
    """A new public listener's RAT: the domain of the appliance's hostname, then ALL Reject."""
    if listener_type == "private":
        return []
    domain = hostname.partition(".")[2] or hostname
    entries = []
    try:
        entries.append({"recipient": canonical_recipient(domain), "action": Action.ACCEPT})
    except ValueError:
        pass  # a single-label hostname ("localhost"): nothing to accept until the admin says
    return [*entries, {"recipient": ALL, "action": Action.REJECT}]


# --- what an administrator does (inside workflow.submit) ------------------------------------------


class RatRefused(ChangeRefused):
    """A RAT the appliance refuses; the message (and problems) say why."""


HEADER = (
    "# Recipient Access Table of listener {name}: one entry a line, the first that covers a recipient decides.\n"
    "# RECIPIENT ACTION, e.g. example.com ACCEPT; the last line is ALL ACCEPT or ALL REJECT.\n"
)


def format_table(listener_name: str, entries: list[Item]) -> str:
    lines = [HEADER.format(name=listener_name).rstrip("\n")]
    lines += [f"{entry['recipient']} {entry['action'].upper()}" for entry in entries]
    return "\n".join(lines) + "\n"


def parse_table(text: str) -> list[Item]:
    """RAT entries from text (``RECIPIENT ACCEPT|REJECT`` a line; # comments); RatRefused by line."""
    entries, found = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) != 2 or words[1].lower() not in Action.values:
            found.append(
                f"line {number}: {line!r} is not an entry: give RECIPIENT ACCEPT or RECIPIENT REJECT"
            )
            continue
        try:
            entries.append({"recipient": canonical_recipient(words[0]), "action": words[1].lower()})
        except ValueError as exc:
            found.append(f"line {number}: {exc}")
    if found:
        raise RatRefused("The RAT cannot be imported", found)
    return entries


def table(listener) -> list[Item]:
    """A listener row's candidate RAT entries, in order."""
    return [{"recipient": e.recipient, "action": e.action} for e in listener.rat_entries.order_by("position")]


def replace(listener_name: str, entries: list[Item]) -> None:
    """The listener's RAT becomes ``entries`` (canonical items); refused, naming why, if it breaks a rule."""
    listener = Listener.objects.filter(name=listener_name).first()
    if listener is None:
        raise RatRefused(f"There is no listener named '{listener_name}'")
    found = [
        message for _, message in problems({"listener_type": listener.listener_type, "rat_entry": entries})
    ]
    if listener.listener_type == Listener.Type.PUBLIC and not entries:
        found.append("The RAT needs at least its last entry, ALL ACCEPT or ALL REJECT")
    if found:
        raise RatRefused(f"The RAT of listener {listener_name} cannot be saved", found)
    listener.rat_entries.all().delete()
    RatEntry.objects.bulk_create(rows(listener, entries))

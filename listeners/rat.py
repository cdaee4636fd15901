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
from appliance.workflow import ChangeRefused, Outcome
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
        if value.startswith("@"):  # the Address Lists form of .example.com: one written form only
            raise ValueError
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
#
# The page and ``listenerconfig edit NAME rcptaccess`` share these: each builds the modified list of
# entries and hands it to ``replace``, so a change is refused with the same words wherever it comes
# from. Text typed or imported is checked line by line (``parse_checked``).


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


def replace(level: str, listener_name: str, entries: list[Item]) -> None:
    """The listener's RAT becomes ``entries`` (canonical items); refused, naming why, if it breaks a rule."""
    listener = Listener.objects.at(level).filter(name=listener_name).first()
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


PRIVATE = "Listener {name} is private: it has no RAT (it relays for its RELAYLIST hosts)"


def counted(count: int) -> str:
    return f"{count:,} {'entry' if count == 1 else 'entries'}"


# --- reading a RAT written as text --------------------------------------------------------


def entry_lines(text: str) -> list[int]:
    """The number of each line that holds an entry, as ``parse_table`` reads them (# starts a comment)."""
    return [number for number, raw in enumerate(text.splitlines(), start=1) if raw.split("#", 1)[0].strip()]


def parse_checked(text: str) -> list[Item]:
    """``parse_table``, then the RAT's rules on the entries; RatRefused naming each problem's line."""
    entries = parse_table(text)
    lines = entry_lines(text)
    found = [
        f"line {lines[index]}: {message}"
        for (_, index), message in problems({"listener_type": Listener.Type.PUBLIC, "rat_entry": entries})
    ]
    if found:
        raise RatRefused("The RAT cannot be imported", found)
    return entries


# --- what an administrator does (inside workflow.submit) ------------------------------------
# They would sit well in listeners.rat, beside replace().


def public_listener(level: str, name: str) -> Listener:
    """The listener named, which must be public: a private one has no RAT."""
    row = Listener.objects.at(level).filter(name=name).first()
    if row is None:
        raise RatRefused(f"There is no listener named '{name}'")
    if row.listener_type != Listener.Type.PUBLIC:
        raise RatRefused(PRIVATE.format(name=row.name))
    return row


def _recipient(text: str) -> str:
    try:
        return canonical_recipient(text)
    except ValueError as exc:
        raise RatRefused(str(exc)) from None


def _action(text: str) -> str:
    value = text.strip().lower()
    if value not in Action.values:
        raise RatRefused(f"{text!r} is not an action of the RAT (accept or reject)")
    return value


def _index(listener: Listener, entries: list[Item], recipient: str) -> int:
    for index, entry in enumerate(entries):
        if entry["recipient"] == recipient:
            return index
    raise RatRefused(f"The RAT of listener {listener.name} has no entry for '{recipient}'")


def _place(entries: list[Item], order: int | None) -> int:
    """Where an entry goes among ``entries`` (the others): at ``order`` (1 = first), else last before ALL."""
    others = sum(1 for entry in entries if entry["recipient"] != ALL)
    if order is None:
        return others
    if not 1 <= order <= others + 1:
        raise RatRefused(f"The order must be from 1 to {others + 1} (ALL stays last)")
    return order - 1


def _not_taken(listener: Listener, entries: list[Item], recipient: str) -> None:
    if recipient == ALL:
        raise RatRefused("ALL is always the last entry of the RAT: change its action instead")
    if any(entry["recipient"] == recipient for entry in entries):
        raise RatRefused(f"The RAT of listener {listener.name} already has an entry for '{recipient}'")


def set_table(level: str, listener_name: str, entries: list[Item]) -> None:
    """Edit RAT: the listener's entries become ``entries`` (as ``parse_checked`` gives them)."""
    replace(level, public_listener(level, listener_name).name, entries)


def import_table(level: str, listener_name: str, text: str) -> Outcome:
    """Import RAT: the text replaces every entry of the listener's RAT."""
    listener = public_listener(level, listener_name)
    entries = parse_checked(text)
    replace(level, listener.name, entries)
    return Outcome(notes=[f"Imported {counted(len(entries))}."])


def add_entry(level: str, listener_name: str, recipient: str, action: str, order: int | None = None) -> None:
    """Add Entry: at ``order`` (1 = first), else last before ALL."""
    listener = public_listener(level, listener_name)
    entries = table(listener)
    recipient = _recipient(recipient)
    _not_taken(listener, entries, recipient)
    entries.insert(_place(entries, order), {"recipient": recipient, "action": _action(action)})
    replace(level, listener.name, entries)


def edit_entry(
    level: str,
    listener_name: str,
    recipient: str,
    *,
    new_recipient: str | None = None,
    action: str | None = None,
    order: int | None = None,
) -> None:
    """Edit Entry: what is given changes (None: stays). ALL keeps its recipient and its place."""
    listener = public_listener(level, listener_name)
    entries = table(listener)
    recipient = _recipient(recipient)
    index = _index(listener, entries, recipient)
    entry = entries.pop(index)
    if new_recipient is not None:
        renamed = _recipient(new_recipient)
        if recipient == ALL and renamed != ALL:
            raise RatRefused("ALL is always the last entry of the RAT: only its action can change")
        if renamed != recipient:
            _not_taken(listener, entries, renamed)
            entry["recipient"] = renamed
    if action is not None:
        entry["action"] = _action(action)
    if order is not None and recipient == ALL:
        raise RatRefused("ALL is always the last entry of the RAT: only its action can change")
    entries.insert(index if order is None else _place(entries, order), entry)
    replace(level, listener.name, entries)


def delete_entry(level: str, listener_name: str, recipient: str) -> None:
    listener = public_listener(level, listener_name)
    entries = table(listener)
    recipient = _recipient(recipient)
    if recipient == ALL:
        raise RatRefused(
            "The ALL entry cannot be deleted: every RAT ends with it (change its action instead)"
        )
    del entries[_index(listener, entries, recipient)]
    replace(level, listener.name, entries)


# --- forms -------------------------------------------------------------------------------------

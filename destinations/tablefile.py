"""Import Table / Export Table: the Destination Controls table as text, one entry a line.

    # comments and blank lines are ignored
    Default tls=preferred ip_sort_pref=ipv6_preferred max_host_concurrency=50 max_messages_per_connection=50 limits_apply_to=domain
    example.com tls=required_verify max_host_concurrency=20 max_recipients_per_minute=180
    .example.com tls=required
    192.0.2.1 tls=none

The destination first, then ``setting=value`` pairs named and valued as the
``<destination>`` elements of the configuration file; a setting left out (or given
as ``default``) takes the Default entry's, and on the Default line the shipped value
(``max_recipients_per_minute`` left out there: No Limit). Export writes every
setting an entry has of its own, so export → import gives the same table.
"""

from __future__ import annotations

from destinations import entries
from destinations.entries import ELEMENTS, Entry
from destinations.models import LIMITS, TlsSupport
from destinations.validators import canonical_destination

SETTINGS = {tag: attribute for tag, attribute in ELEMENTS.items() if tag != "destination_name"}
MAX_PROBLEMS = 20
HEADER = (
    "# Destination Controls table: one entry a line, the destination (a domain, .subdomain or IP address)\n"
    "# then setting=value pairs; a setting left out takes the Default entry's.\n"
    f"# Settings: {', '.join(SETTINGS)}\n"
)


class TableError(ValueError):
    """Lines that cannot be imported; ``problems`` say which and why (``line N: …``)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def format_table(table: list[Entry]) -> str:
    lines = [HEADER.rstrip("\n")]
    for entry in sorted(table, key=lambda entry: entries.sort_key(entry.name)):
        pairs = [
            f"{tag}={value}"
            for tag, attribute in SETTINGS.items()
            if (value := getattr(entry, attribute)) is not None
        ]
        lines.append(" ".join([entry.name, *pairs]))
    return "\n".join(lines) + "\n"


def _value(tag: str, text: str):
    """A setting's value from its text (None: the Default entry's); ValueError in the admin's words."""
    attribute = SETTINGS[tag]
    if text == "default":
        return TlsSupport.DEFAULT if attribute == "tls" else None
    if attribute in LIMITS:
        low, high = LIMITS[attribute]
        if not text.isdigit() or not low <= int(text) <= high:
            raise ValueError(f"{tag} must be a whole number from {low} to {high} or default, not {text!r}")
        return int(text)
    choices = entries.CHOICES[attribute]
    if text not in choices.values:
        raise ValueError(f"{tag} must be one of {', '.join(choices.values)}, not {text!r}")
    return text


def _entry(line: str) -> Entry:
    name, *pairs = line.split()
    values = {"name": canonical_destination(name), "tls": None}
    given = set()
    for pair in pairs:
        tag, equals, text = pair.partition("=")
        if not equals or tag not in SETTINGS:
            raise ValueError(f"{pair!r} is not a setting=value pair (settings: {', '.join(SETTINGS)})")
        if tag in given:
            raise ValueError(f"{tag} is given twice")
        given.add(tag)
        values[SETTINGS[tag]] = _value(tag, text)
    entry = Entry(**values).filled()  # the Default line: what it leaves out is the shipped value
    entry.tls = entry.tls or TlsSupport.DEFAULT
    if problem := next(iter(entries.problems(entry)), None):
        raise ValueError(problem)
    return entry


def parse_table(text: str) -> list[Entry]:
    """The entries of an imported table, or TableError naming each bad line (the first 20)."""
    table, problems, seen = [], [], {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            entry = _entry(line)
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        if entry.name in seen:
            problems.append(f"line {number}: {entry.name} is listed twice (first on line {seen[entry.name]})")
            continue
        seen[entry.name] = number
        table.append(entry)
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"… and {len(problems) - MAX_PROBLEMS} more bad lines"]
    if problems:
        raise TableError(problems)
    return table

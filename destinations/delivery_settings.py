"""Network > Mail Delivery (``<delivery>``, ``deliveryconfig``): how mail leaves the appliance, system-wide.

The default delivery interface (Auto, or the IP interface whose address is the
source address and whose hostname is the EHLO name: one of the interfaces of the machine
the administrator's mode sees), the outbound connection limits, and how long an
undelivered message is retried before it is bounced.

The delivery engine reads the running configuration (``delivery_of(config)``:
the defaults when a version has no ``<delivery>``). The page and the console
change the candidate row with ``set_delivery`` inside ``workflow.submit``; a
refusal is a ``DeliveryRefused`` in the administrator's words and changes nothing.
"""

from __future__ import annotations

from appliance import interfaces
from appliance.config import levels
from appliance.config.sections import Config, Item
from appliance.models import SystemSettings
from appliance.workflow import ChangeRefused, Outcome
from destinations.models import DELIVERY_DEFAULTS, DELIVERY_LIMITS, DeliverySettings

AUTO = ""  # the default delivery interface chosen by the operating system
INTERFACE = "default_delivery_interface"
LABELS = {
    INTERFACE: "Default Delivery Interface",
    "max_concurrency": "Maximum Concurrent Connections",
    "max_tls_concurrency": "Maximum Concurrent TLS Connections",
    "max_queue_lifetime": "Maximum Time in Queue",
    "initial_retry": "Initial Time to Wait per Message",
    "max_retry_interval": "Maximum Time to Wait per Message",
}
SECONDS = ("max_queue_lifetime", "initial_retry", "max_retry_interval")
# ``<delivery>`` element → ``DeliverySettings`` attribute.
FIELDS = {INTERFACE: "interface_name", **{tag: tag for tag in DELIVERY_LIMITS}}
DEFAULTS: Item = {INTERFACE: AUTO, **DELIVERY_DEFAULTS}


class DeliveryRefused(ChangeRefused):
    """Mail Delivery settings the appliance refuses; the message says which and why."""


# --- reading ----------------------------------------------------------------------------


def delivery_of(config: Config) -> Item:
    """The ``<delivery>`` item of a configuration; one without the section has the defaults."""
    items = config.get("delivery")
    return dict(items[0]) if items else dict(DEFAULTS)


def current() -> Item:
    """The candidate settings, as a ``<delivery>`` item."""
    row = DeliverySettings.load()
    return {tag: getattr(row, attribute) for tag, attribute in FIELDS.items()}


def interface_label(item: Item) -> str:
    return f"{item['interface_name']} ({item['ip']}: {item['interface_hostname']})"


def interface_choices(mode: levels.Mode) -> list[tuple[str, str]]:
    """Auto, then the candidate interfaces labelled with their address and hostname."""
    return [
        (AUTO, "Auto"),
        *((item["interface_name"], interface_label(item)) for item in interfaces.candidate_items(mode)),
    ]


def interface_display(name: str, items: list[Item]) -> str:
    """The interface among ``items`` as the page and ``deliveryconfig print`` show it: Auto, or "Name
    (ip: hostname)"."""
    if name == AUTO:
        return "Auto"
    found = interfaces.named(name, items)
    return interface_label(found) if found else f"{name} (no such IP interface)"


def describe(mode: levels.Mode, item: Item) -> list[tuple[str, str]]:
    """The settings as the page and ``deliveryconfig print`` show them: (label, text) in order."""
    items = interfaces.candidate_items(mode)
    name = item[INTERFACE]
    found = interfaces.named(name, items)
    if found:
        source = f"{found['ip']}, EHLO {found['interface_hostname']}"
    else:
        hostname = SystemSettings.load().hostname
        source = f"the address the operating system chooses, EHLO {hostname} (the appliance's hostname)"
    return [
        (LABELS[INTERFACE], interface_display(name, items)),
        ("Mail leaves from", source),
        *((LABELS[tag], f"{item[tag]:,}") for tag in ("max_concurrency", "max_tls_concurrency")),
        *((LABELS[tag], seconds_text(item[tag])) for tag in SECONDS),
        ("Waits between attempts", schedule(item)),
    ]


# --- times ------------------------------------------------------------------------------


def _unit(number: int, unit: str) -> str:
    return f"{number:,} {unit}{'' if number == 1 else 's'}"


def duration(seconds: int) -> str:
    """A time in the largest whole unit: "72 hours", "2 minutes", "90 seconds"."""
    if seconds and seconds % 3600 == 0:
        return _unit(seconds // 3600, "hour")
    if seconds and seconds % 60 == 0:
        return _unit(seconds // 60, "minute")
    return _unit(seconds, "second")


def in_hours(seconds: int) -> str:
    """A time in hours, to a tenth: "72 hours", "27.8 hours", "1 hour"."""
    hours = f"{seconds / 3600:,.1f}".removesuffix(".0")
    return f"{hours} hour{'' if hours == '1' else 's'}"


def seconds_text(seconds: int) -> str:
    """How the diff and the page show a time: "259,200 seconds (72 hours)"."""
    text = _unit(seconds, "second")
    if seconds >= 3600:
        return f"{text} ({in_hours(seconds)})"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{text} ({duration(seconds)})"
    return text


def retry_waits(initial: int, maximum: int) -> list[int]:
    """The waits before each retry until they reach the maximum: initial, doubled each time, capped."""
    waits = [initial]
    while waits[-1] < maximum:
        waits.append(min(waits[-1] * 2, maximum))
    return waits


def schedule(item: Item) -> str:
    """The retry schedule in words, e.g. "1 minute, 2 minutes, …, then 1 hour each; bounced after 72 hours"."""
    waits = retry_waits(item["initial_retry"], item["max_retry_interval"])
    rising = ", ".join(duration(wait) for wait in waits[:-1])
    last = duration(waits[-1])
    steps = f"{rising}, then {last} each time" if rising else f"{last} each time"
    return f"{steps}; bounced after {in_hours(item['max_queue_lifetime'])} in the queue"


# --- rules --------------------------------------------------------------------------------


def range_problem(tag: str, value) -> str:
    """What is wrong with one number, in the admin's words ("" if nothing)."""
    low, high = DELIVERY_LIMITS[tag]
    if not isinstance(value, bool) and isinstance(value, int) and low <= value <= high:
        return ""
    unit = " seconds" if tag in SECONDS else ""
    return f"{LABELS[tag]} must be between {low:,} and {high:,}{unit}, not {value}"


def retry_problem(initial: int, maximum: int) -> str:
    if maximum >= initial:
        return ""
    return (
        f"{LABELS['max_retry_interval']} ({_unit(maximum, 'second')}) cannot be shorter than the "
        f"{LABELS['initial_retry']} ({_unit(initial, 'second')}): the first retry waits the initial time, "
        "each later one twice as long, up to the maximum"
    )


def clean_item(item: Item) -> list[tuple[str, str]]:
    """The rule across elements of ``<delivery>``, for a loaded file (the ranges are the fields')."""
    if item["max_retry_interval"] < item["initial_retry"]:
        return [
            (
                "max_retry_interval",
                f"must be at least <initial_retry> ({item['initial_retry']}), not {item['max_retry_interval']}: "
                "the first retry waits the initial time, each later one twice as long, up to this maximum",
            )
        ]
    return []


def advice(item: Item) -> list[str]:
    """Settings that are allowed but probably not meant."""
    warnings = []
    if item["max_tls_concurrency"] > item["max_concurrency"]:
        warnings.append(
            f"{LABELS['max_tls_concurrency']} ({item['max_tls_concurrency']:,}) is above "
            f"{LABELS['max_concurrency']} ({item['max_concurrency']:,}): TLS connections count among all "
            f"connections, so at most {item['max_concurrency']:,} are open at once"
        )
    if item["max_queue_lifetime"] < item["initial_retry"]:
        warnings.append(
            f"{LABELS['max_queue_lifetime']} ({_unit(item['max_queue_lifetime'], 'second')}) is shorter than the "
            f"{LABELS['initial_retry']} ({_unit(item['initial_retry'], 'second')}): a message not delivered "
            "at the first attempt is bounced without a retry"
        )
    return warnings


# --- what an administrator does (inside workflow.submit) ------------------------------------


def set_delivery(mode: levels.Mode, **changes) -> Outcome:
    """Edit Settings (``deliveryconfig setup``): the settings given, by element name, change; the rest stay.

    ``default_delivery_interface`` is ``AUTO`` ("") or the name of a candidate IP interface.
    Every problem is reported at once; nothing is changed when there is one.
    """
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise TypeError(f"not a Mail Delivery setting: {', '.join(sorted(unknown))}")
    item = {**current(), **changes}
    problems = []
    name = item[INTERFACE]
    if name != AUTO:
        names = [candidate["interface_name"] for candidate in interfaces.candidate_items(mode)]
        if name not in names:
            choices = ", ".join(["Auto", *names])
            problems.append(f"There is no IP interface named '{name}': choose one of {choices}")
    problems += [problem for tag in DELIVERY_LIMITS if (problem := range_problem(tag, item[tag]))]
    retries = ("initial_retry", "max_retry_interval")
    if not any(range_problem(tag, item[tag]) for tag in retries):
        if problem := retry_problem(item["initial_retry"], item["max_retry_interval"]):
            problems.append(problem)
    if problems:
        raise DeliveryRefused(problems[0], problems[1:])
    DeliverySettings.objects.update_or_create(
        pk=1, defaults={attribute: item[tag] for tag, attribute in FIELDS.items()}
    )
    return Outcome(warnings=advice(item))

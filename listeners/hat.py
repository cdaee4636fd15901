"""Mail Policies > Mail Flow Policies and HAT Overview: each listener's policies and sender groups.

A listener's Host Access Table (HAT) is an ordered list of sender groups, each
naming a mail flow policy of that listener. A connecting host gets the policy of
the first group that holds its address or its verified host name; a group whose
policy says Continue passes it on to the next. The last group is ALL, which
holds every host. A policy's TLS, Verify Client Certificate and TLS is Mandatory
for Address List either are its own or, with TLS "Use Default", the listener's
Default Policy Parameters.

The rules on one listener (``listener_problems``) work on configuration items, so
the configuration file, the console and the web pages apply the same ones. The
operations below change candidate rows inside ``workflow.submit``; a refusal is
a ``HatRefused`` and the submit rolls back whatever was half done.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from django.db.models import Count, Max, Q

from appliance.config.sections import Item
from appliance.validators import validate_object_name
from appliance.workflow import ChangeRefused, Outcome
from listeners import rat, senders
from listeners.models import (
    DEFAULT_LIMITS,
    POLICY_LIMITS,
    AddressList,
    ConnectionBehavior,
    InboundTls,
    Listener,
    MailFlowPolicy,
    RatEntry,
    SenderEntry,
    SenderGroup,
    limit_problem,
)
from listeners.senders import ALL


class HatRefused(ChangeRefused):
    """A mail flow policy or sender group change the appliance refuses; the message says why."""


# --- what every listener starts with (the ESA's predefined policies and groups) -------------

ACCEPT, RELAY, REJECT = ConnectionBehavior.ACCEPT, ConnectionBehavior.RELAY, ConnectionBehavior.REJECT
PREDEFINED_POLICIES = {
    Listener.Type.PUBLIC: [
        ("ACCEPTED", ACCEPT),
        ("BLOCKED", REJECT),
        ("THROTTLED", ACCEPT),
        ("TRUSTED", ACCEPT),
    ],
    Listener.Type.PRIVATE: [("RELAYED", RELAY), ("BLOCKED", REJECT)],
}
PREDEFINED_GROUPS = {
    Listener.Type.PUBLIC: [
        ("ALLOWED_LIST", "TRUSTED", "Senders you trust"),
        ("BLOCKED_LIST", "BLOCKED", "Senders you refuse"),
        ("SUSPECTLIST", "THROTTLED", "Suspicious senders"),
        ("UNKNOWNLIST", "ACCEPTED", "Senders accepted as any other"),
        (ALL, "ACCEPTED", ""),
    ],
    Listener.Type.PRIVATE: [
        ("RELAYLIST", "RELAYED", "Your own hosts, which may relay through this listener"),
        (ALL, "BLOCKED", ""),
    ],
}
# Per-client-address limits of the predefined policies that differ from the Default Policy Parameters
# (the others say Use Default). THROTTLED: suspicious senders get half. TRUSTED and RELAYED: known hosts
# that send in bulk (your own relays, partners' outbound clusters) get five times as much, and still
# at most a third of a listener's 300, so even a compromised trusted host cannot take it whole.
PREDEFINED_CLIENT_LIMITS = {
    "THROTTLED": {"max_concurrency_per_ip": 10, "max_connections_per_minute_per_ip": 60},
    "TRUSTED": {"max_concurrency_per_ip": 100, "max_connections_per_minute_per_ip": 600},
    "RELAYED": {"max_concurrency_per_ip": 100, "max_connections_per_minute_per_ip": 600},
}
# What a Default Policy Parameters element holds when a file leaves it out: TLS Off, as on the ESA.
DEFAULT_PARAMETERS = {
    "tls": InboundTls.OFF,
    "tls_verify_client": False,
    "tls_mandatory_address_list": "",
    **{tag: DEFAULT_LIMITS[tag] for tag in POLICY_LIMITS},
}


def predefined_policies(listener_type: str) -> list[Item]:
    return [
        {
            "policy_name": name,
            "connection_behavior": behavior,
            "tls": InboundTls.DEFAULT,
            "tls_verify_client": False,
            "tls_mandatory_address_list": "",
            **dict.fromkeys(POLICY_LIMITS),
            **PREDEFINED_CLIENT_LIMITS.get(name, {}),
        }
        for name, behavior in PREDEFINED_POLICIES[listener_type]
    ]


def predefined_hat(listener_type: str) -> list[Item]:
    return [
        {
            "sender_group_name": name,
            "policy": policy,
            "comment": comment,
            "host": [ALL] if name == ALL else [],
        }
        for name, policy, comment in PREDEFINED_GROUPS[listener_type]
    ]


def with_predefined(listener: Item) -> Item:
    """The listener item, its policies, HAT and RAT the predefined ones where it has none (a file
    without them)."""
    kind = listener["listener_type"]
    return {
        **listener,
        "mail_flow_policy": listener.get("mail_flow_policy") or predefined_policies(kind),
        "sender_group": listener.get("sender_group") or predefined_hat(kind),
        "rat_entry": listener.get("rat_entry") or rat.when_absent(kind),
    }


# --- the rules on one listener's policies and HAT ------------------------------------------------


def tls_problems(tls: str, verify: bool, address_list: str, *, is_default: bool) -> list[str]:
    """What is wrong with one set of TLS settings (a policy's, or the Default Policy Parameters)."""
    if is_default and tls == InboundTls.DEFAULT:
        return [
            "TLS cannot be 'Use Default' in the Default Policy Parameters: give off, preferred or required"
        ]
    if tls == InboundTls.DEFAULT and (verify or address_list):
        return [
            "With TLS 'Use Default', Verify Client Certificate and TLS is Mandatory for Address List "
            "come from the Default Policy Parameters: leave them unset"
        ]
    problems = []
    if tls == InboundTls.OFF and verify:
        problems.append("Verify Client Certificate needs TLS Preferred or Required")
    if tls != InboundTls.PREFERRED and address_list:
        problems.append("TLS is Mandatory for Address List applies only with TLS Preferred")
    return problems


def sender_problems(group: str, hosts: list[str]) -> list[str]:
    """Bad or repeated entries in one sender group (ALL only in the ALL group)."""
    problems, seen = [], set()
    for text in hosts:
        try:
            sender = senders.parse_sender(text)
        except ValueError as exc:
            problems.append(f"Sender group {group}: the entry {exc}")
            continue
        if (sender.host == ALL) != (group == ALL):
            problems.append(
                f"Sender group {group}: 'ALL' belongs only to the ALL group, which holds nothing else"
                if group != ALL
                else f"Sender group ALL holds only the entry ALL, not {text!r}"
            )
        elif sender.host in seen:
            problems.append(f"Sender group {group}: the entry {sender.host!r} is listed twice")
        seen.add(sender.host)
    return problems


def listener_problems(listener: Item) -> list[tuple[tuple[str, int], str]]:
    """Every rule on one listener's policies and HAT, as ((element, entry index), message)."""
    listener = with_predefined(listener)
    problems: list[tuple[tuple[str, int], str]] = []
    parameters = listener["default_policy_parameters"] or DEFAULT_PARAMETERS
    for message in tls_problems(
        parameters["tls"],
        parameters["tls_verify_client"],
        parameters["tls_mandatory_address_list"],
        is_default=True,
    ):
        problems.append((("default_policy_parameters", 0), message))
    behaviors = {}
    for index, policy in enumerate(listener["mail_flow_policy"]):
        behaviors[policy["policy_name"]] = policy["connection_behavior"]
        for message in tls_problems(
            policy["tls"], policy["tls_verify_client"], policy["tls_mandatory_address_list"], is_default=False
        ):
            problems.append((("mail_flow_policy", index), f"policy '{policy['policy_name']}': {message}"))
    groups = listener["sender_group"]
    last = len(groups) - 1
    if groups[last]["sender_group_name"] != ALL:
        problems.append(
            (("sender_group", last), "The last sender group must be ALL (the hosts no other group holds)")
        )
    for index, group in enumerate(groups):
        name = group["sender_group_name"]
        where = ("sender_group", index)
        if name.upper() == ALL and name != ALL:
            problems.append((where, f"'{name}' is too like ALL: only the ALL group may be called so"))
        elif not _valid_name(name):
            problems.append((where, f"The sender group name {name!r} is not a valid name"))
        if group["policy"] not in behaviors:
            problems.append(
                (
                    where,
                    f"Sender group {name} names policy '{group['policy']}', which this listener does not have",
                )
            )
        elif name == ALL and behaviors[group["policy"]] == ConnectionBehavior.CONTINUE:
            problems.append((where, ALL_CONTINUES))
        if name == ALL and not group["host"]:
            problems.append((where, "Sender group ALL lacks its entry ALL (<host>ALL</host>)"))
        problems += [(where, message) for message in sender_problems(name, group["host"])]
    return problems


ALL_CONTINUES = (
    "The ALL sender group cannot have a Continue policy: it decides for every host no other group holds"
)


def _valid_name(name: str) -> bool:
    try:
        validate_object_name(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class InboundTlsSettings:
    """The TLS a policy gives: its own settings, or the Default Policy Parameters' with Use Default."""

    tls: str
    verify_client: bool
    mandatory_address_list: str


@dataclass(frozen=True)
class Limits:
    """A policy's limits: its own, or the Default Policy Parameters' where it says Use Default."""

    max_message_size: int
    max_rcpts_per_msg: int
    max_msgs_per_session: int
    max_concurrency_per_ip: int
    max_connections_per_minute_per_ip: int


def effective_limits(listener: Item, policy: Item) -> Limits:
    defaults = listener["default_policy_parameters"]
    return Limits(
        **{tag: policy[tag] if policy.get(tag) is not None else defaults[tag] for tag in POLICY_LIMITS}
    )


def effective_tls(listener: Item, policy: Item) -> InboundTlsSettings:
    source = policy if policy["tls"] != InboundTls.DEFAULT else listener["default_policy_parameters"]
    return InboundTlsSettings(
        source["tls"], source["tls_verify_client"], source["tls_mandatory_address_list"]
    )


# --- rows ↔ configuration items ------------------------------------------------------------------


def policy_item(policy: MailFlowPolicy) -> Item:
    return {
        "policy_name": policy.name,
        "connection_behavior": policy.connection_behavior,
        "tls": policy.tls,
        "tls_verify_client": policy.tls_verify_client,
        "tls_mandatory_address_list": policy.tls_mandatory_address_list,
        **{tag: getattr(policy, tag) for tag in POLICY_LIMITS},
    }


def default_parameters_item(listener: Listener) -> Item:
    return {
        "tls": listener.default_tls,
        "tls_verify_client": listener.default_tls_verify_client,
        "tls_mandatory_address_list": listener.default_tls_mandatory_address_list,
        **{tag: getattr(listener, f"default_{tag}") for tag in POLICY_LIMITS},
    }


def write_policies_and_hat(listeners: list[tuple[Listener, Item]]) -> None:
    """Rows for each saved listener's policies, HAT and RAT, from its item (the predefined ones if it
    has none)."""
    policies, groups, entries, rat_entries = [], [], [], []
    for listener_row, item in listeners:
        item = with_predefined(item)
        policies += [_policy_row(listener_row, policy) for policy in item["mail_flow_policy"]]
        _hat_rows(listener_row, item["sender_group"], groups, entries)
        rat_entries += rat.rows(listener_row, item["rat_entry"])
    RatEntry.objects.bulk_create(rat_entries)
    MailFlowPolicy.objects.bulk_create(policies)
    SenderGroup.objects.bulk_create(groups)
    SenderEntry.objects.bulk_create(entries, batch_size=2000)


def _policy_row(listener_row: Listener, policy: Item) -> MailFlowPolicy:
    return MailFlowPolicy(
        listener=listener_row,
        name=policy["policy_name"],
        connection_behavior=policy["connection_behavior"],
        tls=policy["tls"],
        tls_verify_client=policy["tls_verify_client"],
        tls_mandatory_address_list=policy["tls_mandatory_address_list"],
        **{tag: policy.get(tag) for tag in POLICY_LIMITS},
    )


def _hat_rows(listener_row: Listener, items: list[Item], groups: list, entries: list) -> None:
    """Unsaved rows for sender group ``items``, appended to ``groups`` and ``entries``."""
    for position, item in enumerate(items):
        row = SenderGroup(
            listener=listener_row,
            name=item["sender_group_name"],
            position=position,
            policy_name=item["policy"],
            comment=item["comment"],
        )
        groups.append(row)
        entries += [_entry(row, index, senders.parse_sender(text)) for index, text in enumerate(item["host"])]


def _entry(group: SenderGroup, position: int, sender: senders.Sender) -> SenderEntry:
    return SenderEntry(
        group=group,
        position=position,
        host=sender.host,
        range_start=sender.range_start,
        range_end=sender.range_end,
    )


# --- reading -------------------------------------------------------------------------------------


def listener(level: str, name: str) -> Listener:
    row = Listener.objects.at(level).filter(name=name).first()
    if row is None:
        raise HatRefused(f"There is no listener named '{name}'")
    return row


def policy(listener_row: Listener, name: str) -> MailFlowPolicy:
    row = listener_row.policies.filter(name=name).first()
    if row is None:
        raise HatRefused(f"Listener {listener_row.name} has no mail flow policy named '{name}'")
    return row


def group(listener_row: Listener, name: str) -> SenderGroup:
    row = listener_row.sender_groups.filter(name=name).first()
    if row is None:
        raise HatRefused(f"Listener {listener_row.name} has no sender group named '{name}'")
    return row


def groups_overview(listener_row: Listener):
    """The listener's sender groups in order, each with ``entry_count`` (one query)."""
    return listener_row.sender_groups.annotate(entry_count=Count("entries")).order_by("position")


def policies_overview(listener_row: Listener):
    """The listener's policies, each with ``group_count``: how many sender groups name it."""
    used = {
        name: count
        for name, count in listener_row.sender_groups.values_list("policy_name")
        .annotate(count=Count("id"))
        .values_list("policy_name", "count")
    }
    rows = list(listener_row.policies.all())
    for row in rows:
        row.group_count = used.get(row.name, 0)
    return rows


# --- Find Senders ----------------------------------------------------------------------------


@dataclass
class Finding:
    """Which sender group and policy a host gets, and why (each group that matched, in order)."""

    group: SenderGroup
    policy: MailFlowPolicy | None
    entry: str
    reasons: list[str] = field(default_factory=list)


def find_senders(listener_row: Listener, address: str, hostname: str = "") -> Finding:
    """The sender group and policy the HAT gives a host (``hostname``: its verified reverse DNS name).

    One indexed query finds every entry holding the address or the name; groups
    are then read in order, first match wins, Continue passes on.
    """
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise HatRefused(f"{address.strip()!r} is not an IPv4 or IPv6 address") from None
    names = []
    if hostname.strip():
        try:
            parsed = senders.parse_sender(hostname)
        except ValueError:
            parsed = None
        if parsed is None or parsed.is_address or parsed.host.startswith(".") or parsed.host == ALL:
            raise HatRefused(f"{hostname.strip()!r} is not a host name")
        names = senders.name_keys(parsed.host)
    key = senders.address_key(ip)
    matches = (
        SenderEntry.objects.filter(group__listener=listener_row)
        .filter(Q(range_start__gt="", range_start__lte=key, range_end__gte=key) | Q(host__in=[*names, ALL]))
        .select_related("group")
        .order_by("group__position", "position")
    )
    policies = {row.name: row for row in listener_row.policies.all()}
    rows = {}

    def behavior(group_name: str) -> tuple[str, str]:
        policy_row = policies.get(rows[group_name].policy_name)
        return rows[group_name].policy_name, policy_row.connection_behavior if policy_row else ""

    def found():
        for entry in matches:
            rows.setdefault(entry.group.name, entry.group)
            yield entry.group.name, entry.host

    decided, reasons = first_match(found(), behavior)
    if decided is None:  # listener_problems forbids a HAT without ALL
        raise HatRefused(f"Listener {listener_row.name} has no ALL sender group")
    group_row = rows[decided[0]]
    return Finding(group_row, policies.get(group_row.policy_name), decided[1], reasons)


def first_match(matches, behavior_of) -> tuple[tuple[str, str] | None, list[str]]:
    """The HAT's decision: the first (group, entry) of ``matches`` (in HAT order) whose group's policy
    does not say Continue, and why, in words. ``behavior_of(group)`` → (policy name, behaviour)."""
    reasons, passed = [], set()
    for group, entry in matches:
        if group in passed:
            continue
        passed.add(group)
        policy_name, behavior = behavior_of(group)
        if behavior == ConnectionBehavior.CONTINUE:
            reasons.append(f"{group} holds {entry}, but its policy {policy_name} says Continue")
            continue
        reasons.append(
            f"{group} holds {entry}" if entry != ALL else "No other sender group holds it, so ALL does"
        )
        return (group, entry), reasons
    return None, reasons


# --- mail flow policies ------------------------------------------------------------------------


def _check_name(name: str, what: str) -> None:
    try:
        validate_object_name(name)
    except ValueError as exc:
        raise HatRefused(f"The {what} name {exc}") from None


def _check_choice(value: str, choices, label: str) -> None:
    if value not in choices.values:
        raise HatRefused(f"{label} must be one of {', '.join(choices.values)}, not {value!r}")


def _check_tls(tls: str, verify: bool, address_list: str, *, is_default: bool) -> None:
    _check_choice(tls, InboundTls, "TLS")
    problems = tls_problems(tls, verify, address_list, is_default=is_default)
    if problems:
        raise HatRefused(problems[0])
    if address_list and not AddressList.objects.filter(name=address_list).exists():
        raise HatRefused(f"There is no address list named '{address_list}'")


def save_policy(
    level: str,
    listener_name: str,
    name: str,
    *,
    new_name: str | None = None,
    connection_behavior: str | None = None,
    tls: str | None = None,
    tls_verify_client: bool | None = None,
    tls_mandatory_address_list: str | None = None,
    limits: dict[str, int | None] | None = None,
    create: bool = False,
) -> Outcome:
    """Add Policy (``create``) or edit one: the settings given (None: keep, or on a new policy the default).

    ``limits``: POLICY_LIMITS tag → a number, or None for Use Default; tags left out are kept.
    """
    listener_row = listener(level, listener_name)
    if create:
        _check_name(name, "policy")
        if listener_row.policies.filter(name=name).exists():
            raise HatRefused(f"Listener {listener_name} already has a policy named '{name}'")
        row = MailFlowPolicy(listener=listener_row, name=name, connection_behavior=ConnectionBehavior.ACCEPT)
    else:
        row = policy(listener_row, name)
    changes = {
        "connection_behavior": connection_behavior,
        "tls": tls,
        "tls_verify_client": tls_verify_client,
        "tls_mandatory_address_list": tls_mandatory_address_list,
    }
    for attribute, value in changes.items():
        if value is not None:
            setattr(row, attribute, value)
    _set_limits(row, limits or {}, "{}")
    _check_choice(row.connection_behavior, ConnectionBehavior, "Connection Behavior")
    if (
        row.connection_behavior == ConnectionBehavior.CONTINUE
        and listener_row.sender_groups.filter(name=ALL, policy_name=name).exists()
    ):
        raise HatRefused(ALL_CONTINUES)
    _check_tls(row.tls, row.tls_verify_client, row.tls_mandatory_address_list, is_default=False)
    if new_name is not None and new_name != name and not create:
        _check_name(new_name, "policy")
        if listener_row.policies.filter(name=new_name).exists():
            raise HatRefused(f"Listener {listener_name} already has a policy named '{new_name}'")
        listener_row.sender_groups.filter(policy_name=name).update(policy_name=new_name)
        row.name = new_name
    row.save()
    return Outcome()


def set_default_parameters(
    level: str,
    listener_name: str,
    *,
    tls: str | None = None,
    tls_verify_client: bool | None = None,
    tls_mandatory_address_list: str | None = None,
    limits: dict[str, int] | None = None,
) -> Outcome:
    """Default Policy Parameters: the TLS settings of every policy whose TLS is Use Default, and the
    limits of every policy that sets none of its own."""
    row = listener(level, listener_name)
    if any(value is None for value in (limits or {}).values()):
        raise HatRefused("The Default Policy Parameters need a number for each limit")
    _set_limits(row, limits or {}, "default_{}")
    if tls is not None:
        row.default_tls = tls
    if tls_verify_client is not None:
        row.default_tls_verify_client = tls_verify_client
    if tls_mandatory_address_list is not None:
        row.default_tls_mandatory_address_list = tls_mandatory_address_list
    _check_tls(
        row.default_tls,
        row.default_tls_verify_client,
        row.default_tls_mandatory_address_list,
        is_default=True,
    )
    row.save()
    return Outcome()


def _set_limits(row, limits: dict[str, int | None], attribute: str) -> None:
    """Set the given limits on a policy or listener row (``attribute``: how the column is named)."""
    for tag, value in limits.items():
        if tag not in POLICY_LIMITS:
            raise HatRefused(f"{tag!r} is not a limit of a mail flow policy ({', '.join(POLICY_LIMITS)})")
        if value is not None and (problem := limit_problem(tag, value)):
            raise HatRefused(problem)
        setattr(row, attribute.format(tag), value)


def delete_policy(level: str, listener_name: str, name: str) -> None:
    listener_row = listener(level, listener_name)
    row = policy(listener_row, name)
    users = list(listener_row.sender_groups.filter(policy_name=name).values_list("name", flat=True))
    if users:
        raise HatRefused(
            f"Policy {name} is used by sender group(s) {', '.join(users)}: give them another first"
        )
    row.delete()


# --- sender groups ---------------------------------------------------------------------------


def _all_group(listener_row: Listener) -> SenderGroup:
    return listener_row.sender_groups.get(name=ALL)


def _place(listener_row: Listener, row: SenderGroup, order: int | None) -> None:
    """Put ``row`` at ``order`` (1 = first; None: last before ALL) and number the groups again."""
    others = [g for g in listener_row.sender_groups.exclude(pk=row.pk).order_by("position") if g.name != ALL]
    count = len(others) + 1
    if order is None:
        order = count
    if not 1 <= order <= count:
        raise HatRefused(f"The order must be from 1 to {count} (ALL stays last)")
    others.insert(order - 1, row)
    others.append(_all_group(listener_row))
    for position, group_row in enumerate(others):
        group_row.position = position
    SenderGroup.objects.bulk_update([g for g in others if g.pk], ["position"])


def save_group(
    level: str,
    listener_name: str,
    name: str,
    *,
    new_name: str | None = None,
    policy_name: str | None = None,
    comment: str | None = None,
    order: int | None = None,
    create: bool = False,
) -> Outcome:
    """Add Sender Group (``create``) or edit one; ``order`` moves it (1 = first). ALL keeps its place."""
    listener_row = listener(level, listener_name)
    if create:
        _check_name(name, "sender group")
        if name.upper() == ALL or listener_row.sender_groups.filter(name=name).exists():
            raise HatRefused(f"Listener {listener_name} already has a sender group named '{name}'")
        if policy_name is None:
            raise HatRefused("A sender group needs a mail flow policy")
        row = SenderGroup(listener=listener_row, name=name, position=0, policy_name=policy_name)
    else:
        row = group(listener_row, name)
    if policy_name is not None:
        behavior = policy(listener_row, policy_name).connection_behavior
        if row.name == ALL and behavior == ConnectionBehavior.CONTINUE:
            raise HatRefused(ALL_CONTINUES)
        row.policy_name = policy_name
    if comment is not None:
        row.comment = comment.strip()
    if new_name is not None and new_name != name and not create:
        if name == ALL:
            raise HatRefused("The ALL sender group keeps its name")
        _check_name(new_name, "sender group")
        if new_name.upper() == ALL or listener_row.sender_groups.filter(name=new_name).exists():
            raise HatRefused(f"Listener {listener_name} already has a sender group named '{new_name}'")
        row.name = new_name
    if create or order is not None:
        if row.name == ALL:
            raise HatRefused("The ALL sender group stays last")
        _place(listener_row, row, order)
    row.save()
    return Outcome()


def delete_group(level: str, listener_name: str, name: str) -> None:
    listener_row = listener(level, listener_name)
    if name == ALL:
        raise HatRefused("The ALL sender group cannot be deleted: it holds every host no other group holds")
    group(listener_row, name).delete()


def add_senders(level: str, listener_name: str, group_name: str, texts: list[str]) -> Outcome:
    """Add Senders: entries at the end of the group. An entry already in the group is refused; one that
    another group also holds is fine (first match wins), and the outcome says which group wins."""
    listener_row = listener(level, listener_name)
    group_row = group(listener_row, group_name)
    texts = [text.strip() for text in texts if text.strip()]
    if not texts:
        raise HatRefused(f"Give at least one sender ({senders.FORMS})")
    existing = list(group_row.entries.values_list("host", flat=True))
    problems = sender_problems(group_name, existing + texts)
    if problems:
        raise HatRefused(problems[0], problems[1:])
    start = group_row.entries.aggregate(last=Max("position"))["last"]
    start = -1 if start is None else start
    parsed = [senders.parse_sender(text) for text in texts]
    SenderEntry.objects.bulk_create(_entry(group_row, start + 1 + i, s) for i, s in enumerate(parsed))
    return Outcome(notes=_overlaps(listener_row, group_row, parsed))


def _overlaps(listener_row: Listener, group_row: SenderGroup, added: list[senders.Sender]) -> list[str]:
    """Other groups holding an address range or name that overlaps what was added (a few queries)."""
    notes = []
    for sender in added[:20]:  # enough to point at the pattern without a query per line of a long paste
        if sender.is_address:
            overlap = Q(
                range_start__gt="", range_start__lte=sender.range_end, range_end__gte=sender.range_start
            )
        elif sender.host.startswith("."):  # the same .domain, names below it, and .domains above it
            above = senders.name_keys(sender.host[1:])[1:]
            overlap = Q(host=sender.host) | Q(host__endswith=sender.host) | Q(host__in=above)
        else:
            overlap = Q(host__in=senders.name_keys(sender.host))
        others = (
            SenderEntry.objects.filter(group__listener=listener_row)
            .exclude(group=group_row)
            .filter(overlap)
            .select_related("group")
            .order_by("group__position")[:3]
        )
        for other in others:
            first = group_row if group_row.position < other.group.position else other.group
            notes.append(
                f"{sender.host} overlaps {other.host} in sender group {other.group.name}; "
                f"{first.name} comes first, so its policy applies where both match"
            )
    return notes


def remove_senders(level: str, listener_name: str, group_name: str, texts: list[str]) -> None:
    listener_row = listener(level, listener_name)
    group_row = group(listener_row, group_name)
    if group_name == ALL:
        raise HatRefused("The ALL sender group always holds ALL")
    hosts = []
    for text in (t.strip() for t in texts if t.strip()):
        try:
            hosts.append(senders.parse_sender(text).host)
        except ValueError:
            hosts.append(text)
    missing = sorted(
        set(hosts) - set(group_row.entries.filter(host__in=hosts).values_list("host", flat=True))
    )
    if missing:
        raise HatRefused(f"Sender group {group_name} does not hold {', '.join(missing)}")
    group_row.entries.filter(host__in=hosts).delete()


def replace_hat(level: str, listener_name: str, groups: list[Item]) -> None:
    """Import HAT: the listener's sender groups become ``groups`` (items as in the configuration file)."""
    listener_row = listener(level, listener_name)
    item = {
        "listener_type": listener_row.listener_type,
        "default_policy_parameters": default_parameters_item(listener_row),
        "mail_flow_policy": [policy_item(row) for row in listener_row.policies.all()],
        "sender_group": groups,
    }
    problems = [message for _, message in listener_problems(item)]
    if not groups:
        problems.insert(0, "The HAT has no sender groups: it needs at least the ALL group")
    if problems:
        raise HatRefused("The HAT cannot be imported", problems)
    group_rows, entry_rows = [], []
    _hat_rows(listener_row, groups, group_rows, entry_rows)
    listener_row.sender_groups.all().delete()
    SenderGroup.objects.bulk_create(group_rows)
    SenderEntry.objects.bulk_create(entry_rows, batch_size=2000)


def required_tls_without_certificate(config) -> list[str]:
    """Commit advice: a policy in use that requires TLS on a listener that has no certificate to offer."""
    warnings = []
    for item in config.get("listeners", []):
        if item["certificate_name"]:
            continue
        listener = with_predefined(item)
        used = {group["policy"] for group in listener["sender_group"]}
        for policy in listener["mail_flow_policy"]:
            if policy["policy_name"] in used and effective_tls(listener, policy).tls == InboundTls.REQUIRED:
                warnings.append(
                    f"listener '{item['listener_name']}': policy {policy['policy_name']} requires TLS, but the "
                    "listener has no certificate to offer, so those senders cannot send mail"
                )
    return warnings

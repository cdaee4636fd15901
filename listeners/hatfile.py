"""Import HAT / Export HAT: a listener's sender groups as text.

    # comments and blank lines are ignored
    ALLOWED_LIST $TRUSTED # Senders you trust
        10.1.1.1
        .example.com
    BLOCKED_LIST $BLOCKED
        192.0.2.0/24
    ALL $ACCEPTED

A group line (not indented) gives the group's name, its mail flow policy after
``$`` as the ESA shows it, and after ``#`` its comment; the group's senders
follow, indented, one a line, in the syntax of ``listeners.senders``. Groups are
in HAT order and the last is ALL. Import replaces the listener's sender groups
(its policies stay); export → import gives the same HAT.
"""

from __future__ import annotations

from appliance.config.sections import Item
from listeners import senders
from listeners.hat import HatRefused

HEADER = (
    "# HAT of listener {name}: sender groups in order; the first that holds a host wins.\n"
    "# A group: NAME $POLICY # comment, then its senders indented, one a line. The last group is ALL.\n"
)
MAX_PROBLEMS = 20


def format_hat(listener_name: str, groups: list[Item]) -> str:
    lines = [HEADER.format(name=listener_name).rstrip("\n")]
    for group in groups:
        comment = f" # {group['comment']}" if group["comment"] else ""
        lines.append(f"{group['sender_group_name']} ${group['policy']}{comment}")
        lines += [f"    {host}" for host in group["host"] if group["sender_group_name"] != senders.ALL]
    return "\n".join(lines) + "\n"


def parse_hat(text: str) -> list[Item]:
    """Sender group items from HAT text; HatRefused listing the lines that are wrong (``line N: …``)."""
    groups: list[Item] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            if not groups:
                problems.append(f"line {number}: a sender before any group line (NAME $POLICY)")
                continue
            problem = _add_sender(groups[-1], line.split("#", 1)[0].strip())
        else:
            problem = _add_group(groups, line)
        if problem:
            problems.append(f"line {number}: {problem}")
        if len(problems) >= MAX_PROBLEMS:
            problems.append("… and perhaps more; correct these first")
            break
    if problems:
        raise HatRefused("The HAT cannot be imported", problems)
    for group in groups:
        del group["seen"]
        if group["sender_group_name"] == senders.ALL:
            group["host"] = [senders.ALL]
    return groups


def _add_group(groups: list[Item], line: str) -> str:
    head, _, comment = line.partition("#")
    name, dollar, policy = (part.strip() for part in head.partition("$"))  # names hold no $ (nor #)
    if not dollar or not name or not policy:
        return f"{line.strip()!r} is not a group line: give NAME $POLICY, optionally followed by # comment"
    if any(group["sender_group_name"] == name for group in groups):
        return f"the sender group {name} appears twice"
    groups.append(
        {"sender_group_name": name, "policy": policy, "comment": comment.strip(), "host": [], "seen": set()}
    )
    return ""


def _add_sender(group: Item, text: str) -> str:
    try:
        host = senders.parse_sender(text).host
    except ValueError as exc:
        return f"the entry {exc}"
    if host == senders.ALL or group["sender_group_name"] == senders.ALL:
        return (
            "the ALL group holds every host by itself: list no senders under it, and ALL under no other group"
        )
    if host in group["seen"]:
        return f"the entry {host!r} is listed twice in {group['sender_group_name']}"
    group["seen"].add(host)
    group["host"].append(host)
    return ""

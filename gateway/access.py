"""A listener's HAT from the running configuration, compiled for the moment a host connects.

Per sender group, the address entries become sorted, merged ranges (a binary
search per group) and the name entries a set (one lookup per label of the
host's name); the groups are then read in order by ``hat.first_match``, as Find
Senders reads them from the candidate rows. Built once per listener and commit.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass

from appliance.config.sections import Item
from listeners import hat, senders
from listeners.senders import ALL


@dataclass(frozen=True)
class Decision:
    """What the HAT gives a connecting host."""

    group: str
    entry: str  # the entry that matched, e.g. "10.1.0.0/16" or "ALL"
    policy: Item  # the <mail_flow_policy> item
    tls: hat.InboundTlsSettings
    reasons: tuple[str, ...]

    @property
    def behavior(self) -> str:
        return self.policy["connection_behavior"]


class _Group:
    def __init__(self, item: Item):
        self.name, self.policy = item["sender_group_name"], item["policy"]
        ranges, self.names = [], set()
        for text in item["host"]:
            sender = senders.parse_sender(text)
            if sender.is_address:
                ranges.append((int(sender.range_start, 16), int(sender.range_end, 16), sender.host))
            elif sender.host != ALL:
                self.names.add(sender.host)
        self.holds_all = ALL in item["host"]
        # Merged ranges, each with the entries inside it, so one bisect finds a candidate.
        merged: list[list] = []
        for start, end, text in sorted(ranges):
            if merged and start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
                merged[-1][2].append((start, end, text))
            else:
                merged.append([start, end, [(start, end, text)]])
        self.starts = [block[0] for block in merged]
        self.blocks = merged

    def match(self, key: int, names: list[str]) -> str | None:
        index = bisect.bisect_right(self.starts, key) - 1
        if index >= 0 and key <= self.blocks[index][1]:
            for start, end, text in self.blocks[index][2]:
                if start <= key <= end:
                    return text
        for name in names:
            if name in self.names:
                return name
        return ALL if self.holds_all else None


class HostAccessTable:
    def __init__(self, listener: Item):
        listener = hat.with_predefined(listener)
        self.listener = listener
        self.policies = {policy["policy_name"]: policy for policy in listener["mail_flow_policy"]}
        self.groups = [_Group(item) for item in listener["sender_group"]]
        self.by_name = {group.name: group for group in self.groups}
        # Reverse DNS is looked up only when some group lists host names.
        self.needs_names = any(group.names for group in self.groups)

    def decide(self, address: str, hostname: str = "") -> Decision:
        """The first group holding the address or the (verified) host name, Continue passing on."""
        ip = ipaddress.ip_address(address)
        key = int(senders.address_key(ip), 16)
        names = senders.name_keys(hostname) if hostname else []

        def matches():
            for group in self.groups:
                entry = group.match(key, names)
                if entry is not None:
                    yield group.name, entry

        def behavior(group_name: str) -> tuple[str, str]:
            policy_name = self.by_name[group_name].policy
            return policy_name, self.policies[policy_name]["connection_behavior"]

        decided, reasons = hat.first_match(matches(), behavior)
        if decided is None:  # the configuration's rules keep ALL last, and never Continue
            raise LookupError(f"listener {self.listener['listener_name']} has no ALL sender group")
        group, entry = decided
        policy = self.policies[self.by_name[group].policy]
        return Decision(group, entry, policy, hat.effective_tls(self.listener, policy), tuple(reasons))

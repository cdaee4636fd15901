"""Differences between two configurations, object by object and field by field."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from appliance import vault
from appliance.config import levels
from appliance.config.sections import Config, Field, Item, Kind, Section, registry


@dataclass
class FieldChange:
    label: str
    before: str
    after: str


@dataclass
class ObjectChange:
    action: str  # "added", "deleted", "changed"
    name: str
    fields: list[FieldChange] = field(default_factory=list)


@dataclass
class SectionChange:
    section: Section
    objects: list[ObjectChange]
    level: str = levels.CLUSTER  # whose settings of the section change: the cluster's, a group's, a machine's
    clustered: bool = False  # the configuration is a cluster's: its features' changes name their level

    @property
    def title(self) -> str:
        """The section's title, with its level in a cluster: "Certificates (Machine: esa2)"."""
        if self.level or (self.clustered and self.section.tag in registry.levelled):
            return f"{self.section.title} ({levels.describe(self.level)})"
        return self.section.title


SHOWN_VALUES = 20  # of a repeated setting: a sender group of thousands stays one readable line


def display(f: Field, value) -> str:
    """A value as the diff shows it; secrets are never shown."""
    if value is None or value == "" or value == []:
        return "(none)"
    if f.kind is Kind.SECRET:
        return "(secret)"
    if f.kind is Kind.BOOL:
        return "Yes" if value else "No"
    if f.kind is Kind.ITEMS:
        return f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}"
    if f.repeated:
        shown = [display(replace(f, repeated=False), one) for one in value[:SHOWN_VALUES]]
        more = len(value) - SHOWN_VALUES
        return "; ".join(shown) + (f"; … ({len(value)} in all)" if more > 0 else "")
    if f.summarize:
        return f.summarize(value)
    return str(value)


def _same(f: Field, before, after) -> bool:
    # The file holds values without surrounding space, so neither counts as a change.
    if f.kind is Kind.SECRET and before and after:
        # Sealing is randomised: compare what the tokens hold.
        return before == after or vault.unseal(before).strip() == vault.unseal(after).strip()
    if f.kind is Kind.ITEMS:
        return not _list_changes(f.child_section(), before or [], after or [])
    if f.repeated:
        return [one.strip() for one in before or ()] == [one.strip() for one in after or ()]
    if f.kind is Kind.TEXT and before and after:
        return before.strip() == after.strip()
    return before == after


def _field_changes(section: Section, before: Item, after: Item) -> list[FieldChange]:
    changes = []
    for f in section.fields:
        old, new = before.get(f.tag), after.get(f.tag)
        if f.kind is Kind.ITEMS:
            continue  # listed entry by entry (_nested_changes)
        if f.kind is Kind.GROUP:
            for change in _field_changes(f.child_section(), old or {}, new or {}):
                changes.append(replace(change, label=f"{f.label}: {change.label}"))
            continue
        if not _same(f, old, new):
            if f.kind is Kind.SECRET and old and new:
                changes.append(FieldChange(f.label, "(secret)", "(secret, changed)"))
            elif f.repeated and max(len(old or ()), len(new or ())) > SHOWN_VALUES:
                changes.append(_long_list_change(f, old or [], new or []))
            else:
                changes.append(FieldChange(f.label, display(f, old), display(f, new)))
    return changes


def _long_list_change(f: Field, before: list, after: list) -> FieldChange:
    """A long repeated setting (thousands of senders) as what left it and what joined it."""
    old, new = set(before), set(after)
    removed = [one for one in before if one not in new]
    added = [one for one in after if one not in old]
    if not removed and not added:
        return FieldChange(f"{f.label} (order)", display(f, before), display(f, after))
    return FieldChange(
        f.label,
        f"{len(before)} entries" + (f", less {display(f, removed)}" if removed else ""),
        f"{len(after)} entries" + (f", with {display(f, added)}" if added else ""),
    )


def _all_fields(section: Section, item: Item) -> list[FieldChange]:
    changes = []
    for f in section.fields:
        value = item.get(f.tag)
        if f.kind is Kind.GROUP and value:
            for change in _all_fields(f.child_section(), value):
                changes.append(replace(change, label=f"{f.label}: {change.label}"))
        elif value not in (None, "", []):
            changes.append(FieldChange(f.label, "", display(f, value)))
    return changes


def _nested_changes(section: Section, before: Item, after: Item, owner: str) -> list[ObjectChange]:
    """Entries of Kind.ITEMS fields, each as an object of its own: "listener 'X': sender group 'Y'"."""
    changes = []
    for f in section.fields:
        if f.kind is Kind.ITEMS:
            for change in _list_changes(f.child_section(), before.get(f.tag) or [], after.get(f.tag) or []):
                change.name = f"{owner}: {change.name}"
                changes.append(change)
    return changes


def _list_changes(section: Section, before: list[Item], after: list[Item]) -> list[ObjectChange]:
    old = {section.item_key(item): item for item in before}
    new = {section.item_key(item): item for item in after}
    changes = []
    for name, item in new.items():
        if name not in old:
            changes.append(ObjectChange("added", section.item_name(item), _all_fields(section, item)))
        elif old[name] != item:  # an equal item (most of a long table) has nothing to compare
            if fields := _field_changes(section, old[name], item):
                changes.append(ObjectChange("changed", section.item_name(item), fields))
            changes += _nested_changes(section, old[name], item, section.item_name(item))
    for name, item in old.items():
        if name not in new:
            changes.append(ObjectChange("deleted", section.item_name(item)))
    if not changes and list(old) != list(new):
        changes.append(
            ObjectChange("changed", section.title, [FieldChange("Order", ", ".join(old), ", ".join(new))])
        )
    return changes


def diff(before: Config, after: Config) -> list[SectionChange]:
    """What changes from ``before`` to ``after``, in file order; sections absent on either side are skipped."""
    result = []
    clustered = any(
        levels.split(key)[1] or (levels.split(key)[0] == levels.GROUPS and config[key])
        for config in (before, after)
        for key in config
    )
    for section in registry.ordered():
        if section.tag not in before or section.tag not in after:
            continue
        defined = {**levels.overrides(before, section.tag), **levels.overrides(after, section.tag)}
        for level in [levels.CLUSTER, *sorted(defined, key=levels.kind_and_name)]:
            config_key = levels.key(section.tag, level)
            old, new = before.get(config_key), after.get(config_key)
            if old is None and new is not None:  # defined at the level now: compared with what it ran
                objects = [ObjectChange("added", f"settings for {levels.describe(level)}")]
                objects += _section_changes(section, _inherited(before, section.tag, level), new)
            elif new is None and old is not None:  # back to what the level inherits
                objects = [ObjectChange("deleted", f"settings for {levels.describe(level)}")]
                objects += _section_changes(section, old, _inherited(after, section.tag, level))
            else:
                objects = _section_changes(section, old, new)
            if objects:
                result.append(SectionChange(section, objects, level, clustered))
    return result


def _inherited(config: Config, tag: str, level: str) -> list[Item]:
    """The settings of section ``tag`` that ``level`` runs when it defines none of its own."""
    above = levels.chain(config, level)[1:]
    return config[levels.key(tag, levels.first_defined(above, levels.overrides(config, tag)))]


def _section_changes(section: Section, old: list[Item], new: list[Item]) -> list[ObjectChange]:
    if old == new:
        return []
    if section.is_list:
        return _list_changes(section, old, new)
    fields = _field_changes(section, old[0], new[0])
    objects = [ObjectChange("changed", section.title, fields)] if fields else []
    return objects + _nested_changes(section, old[0], new[0], section.title)

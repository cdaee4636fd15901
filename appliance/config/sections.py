"""The section registry: how each part of the configuration reads, writes and describes itself.

Every child of ``<config>`` is a section. An app registers its sections in
``AppConfig.ready()``; the configuration file, commit, abandon, rollback, the
diff and the services' view of the running configuration all go through here,
so there is one path between the candidate rows and the XML.

A section's data is a list of items, each a dict of field tag to Python value:
  - a *scalar* section (``<hostname>x</hostname>``) has one item with one field
    named like the section;
  - a *settings* section (``<config_rollback><versions_kept>…``) has one item;
  - a *list* section (``<certificates><certificate>…``) has any number, each
    identified by its ``key`` field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from appliance.config import levels

Item = dict[str, Any]
Config = dict[str, list[Item]]


class Kind(StrEnum):
    TEXT = "text"
    INT = "int"
    BOOL = "bool"
    SECRET = "secret"  # sealed with the appliance key at rest; masked or encrypted in files
    ITEMS = "items"  # repeated elements that each hold ``children`` settings: a list of dicts
    GROUP = "group"  # one element holding ``children`` settings: a dict


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class Field:
    """One setting: one XML element inside its item."""

    tag: str
    label: str
    kind: Kind = Kind.TEXT
    # The value when the element is absent; REQUIRED: the element must be there.
    # None means "off" (an ESA service whose port element is absent).
    default: Any = REQUIRED
    minimum: int | None = None
    maximum: int | None = None
    # Tag of the list section whose keys this field names (a certificate, an interface).
    references: str | None = None
    # Raises ValueError with a message in the administrator's words.
    validate: Callable[[Any], None] | None = None
    # Short text for the diff, instead of the whole value (a PEM certificate).
    summarize: Callable[[Any], str] | None = None
    # Zero or more elements of this tag, in order; the value is a list.
    repeated: bool = False
    # For a field naming a certificate: the host names that certificate should cover,
    # given the item and the whole configuration (an interface's hostname).
    covers: Callable[[Item, Config], list[str]] | None = None
    # Kind.ITEMS and Kind.GROUP: the settings inside the element, the one that names each repeated
    # element, and the element they stand in (``<local_dns><dns_ip>…``), if any; several fields
    # may share one container.
    children: tuple[Field, ...] = ()
    child_key: str | None = None
    container: str | None = None
    # Where a setting of an item stands: an attribute of the item's element (``priority="10"``)
    # or the element's own text (``<dns_ip priority="0">10.0.0.1</dns_ip>``) instead of a child element.
    attribute: bool = False
    text: bool = False

    def __post_init__(self):
        if self.kind is Kind.ITEMS:
            object.__setattr__(self, "repeated", True)
        if self.repeated and self.default is REQUIRED:
            object.__setattr__(self, "default", ())

    @property
    def nested(self) -> bool:
        return self.kind in (Kind.ITEMS, Kind.GROUP)

    def group_default(self) -> Item | None:
        """A Kind.GROUP's value when its element is absent: its children's defaults (None: required)."""
        if any(child.required for child in self.children):
            return None
        return {
            child.tag: list(child.default) if child.repeated else child.default for child in self.children
        }

    def child_section(self) -> Section:
        """The elements of a Kind.ITEMS (or GROUP) field seen as a list section (for parsing and the diff)."""
        return Section(
            tag=self.tag,
            title=self.label,
            heading="",
            fields=self.children,
            read=list,
            write=lambda items: None,
            item_tag=self.tag,
            key=self.child_key,
        )

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Section:
    """A configuration section and the callables that connect it to its candidate rows. Those of a
    feature's section (``Registry.register_feature``) take the level whose rows they read and write:
    ``read(level)``, ``write(items, level)``; the registry's ``read`` and ``write`` call either kind."""

    tag: str
    title: str
    heading: str  # the boxed comment the section appears under in the file
    fields: tuple[Field, ...]
    read: Callable[..., list[Item]]
    write: Callable[..., None]
    item_tag: str | None = None  # list sections only
    key: str | None = None  # list sections only: the field naming an item
    position: int = 100
    # Cross-field checks on one item, given plaintext secrets: yields (where, message); where is a
    # field's tag, (tag, index) for an entry of a nested field, or None for the item as a whole.
    clean_item: Callable[[Item], list[tuple[str | tuple[str, int] | None, str]]] | None = None
    # The items without their nested fields (a listener without its HAT and RAT), for readers of the
    # top level only: "where used" of a target no nested field names.
    read_top: Callable[..., list[Item]] | None = None
    # Machine-level list sections (IP interfaces): the field naming the machine an item belongs to.
    # Each machine sees only its own items (``Registry.for_machine``); names repeat across machines.
    scope: str | None = None
    # List sections left out of a file when they have no items (the groups of a cluster, on an
    # appliance of its own); a committed version without it has none.
    optional: bool = False
    # For a list section other sections' fields name (certificates): the (name, label) choices a form
    # offers of a level's items, and the advice on choosing item ``name`` of a level for the host
    # names it should cover: ``choices(level)``, ``advice(level, name, hostnames)``.
    choices: Callable[[str], list[tuple[str, str]]] | None = None
    advice: Callable[[str, str, list[str]], list[str]] | None = None

    @property
    def is_scalar(self) -> bool:
        return self.item_tag is None and len(self.fields) == 1 and self.fields[0].tag == self.tag

    @property
    def is_list(self) -> bool:
        return self.item_tag is not None

    def field(self, tag: str) -> Field:
        return self._fields_by_tag[tag]

    @property
    def _fields_by_tag(self) -> dict[str, Field]:
        return {f.tag: f for f in self.fields}

    def item_key(self, item: Item):
        """What identifies an item among the section's: its name, with its machine if machine-level."""
        return (item.get(self.scope) or "", item.get(self.key)) if self.scope else item.get(self.key)

    def item_name(self, item: Item) -> str:
        """How the diff and error messages name an item."""
        if self.is_list and self.key:
            name = f"{self.item_tag.replace('_', ' ')} '{item[self.key]}'"
            return f"{name} of machine '{item[self.scope]}'" if self.scope and item.get(self.scope) else name
        return self.title


class LevelStore(Protocol):
    """What Centralized Management (the cluster app) tells the core of levels: which exist, and where
    the candidate keeps the group and machine definitions of features."""

    def known_levels(self) -> list[str]:
        """The levels an administrator may choose: the cluster, its groups, its machines."""

    def cluster_name(self) -> str:
        """The cluster's name, "" on an appliance of its own."""

    def defined(self) -> list[tuple[str, str]]:
        """(section tag, level) of every group and machine definition in the candidate."""

    def define(self, tag: str, level: str, items: list[Item]) -> None:
        """Make ``items`` the settings of section ``tag`` at ``level``."""

    def remove(self, tag: str, level: str) -> None:
        """Remove ``level``'s settings of section ``tag``."""

    def replace(self, tag: str, definitions: dict[str, list[Item]]) -> None:
        """Make ``definitions`` (level → items) the group and machine settings of section ``tag``."""


@dataclass
class Registry:
    sections: dict[str, Section] = field(default_factory=dict)
    features: dict[str, levels.Feature] = field(default_factory=dict)
    level_store: LevelStore | None = None

    def register(self, section: Section) -> None:
        if section.tag in self.sections:
            raise ValueError(f"section <{section.tag}> is registered twice")
        self.sections[section.tag] = section

    def register_feature(self, feature: levels.Feature) -> None:
        """Let ``feature``'s sections be defined at the Group and Machine levels as well."""
        for tag in feature.sections:
            if tag not in self.sections:
                raise ValueError(f"feature {feature.name!r} names section <{tag}>, which is not registered")
        self.features[feature.name] = feature

    def feature_of(self, tag: str) -> levels.Feature | None:
        return next((feature for feature in self.features.values() if tag in feature.sections), None)

    @property
    def levelled(self) -> list[str]:
        """The tags of the sections that may be defined at any level."""
        return [tag for feature in self.features.values() for tag in feature.sections]

    def ordered(self) -> list[Section]:
        return sorted(self.sections.values(), key=lambda s: (s.position, s.tag))

    def get(self, tag: str) -> Section | None:
        return self.sections.get(tag)

    def read(self, tag: str, level: str = levels.CLUSTER, *, top: bool = False) -> list[Item]:
        """The candidate items of section ``tag``: a feature's at ``level`` (defined there or not), the
        other sections' (the cluster's alone) whatever ``level``; ``top``: without their nested fields,
        if the section can leave them out (``Section.read_top``)."""
        section = self.sections[tag]
        read = section.read_top if top and section.read_top else section.read
        return read(level) if tag in self.levelled else read()

    def write(self, tag: str, items: list[Item], level: str = levels.CLUSTER) -> None:
        """Make ``items`` the candidate items of section ``tag`` (a feature's at ``level``)."""
        section = self.sections[tag]
        if tag in self.levelled:
            section.write(items, level)
        else:
            section.write(items)

    def candidate(self) -> Config:
        """The whole candidate configuration, as section data: each group's and machine's definitions
        of a feature under ``levels.key``."""
        config = {section.tag: self.read(section.tag) for section in self.ordered()}
        for tag, level in self.level_store.defined() if self.level_store else ():
            config[levels.key(tag, level)] = self.read(tag, level)
        return config

    def for_machine(self, config: Config, machine: str) -> Config:
        """``config`` as ``machine`` runs it: of each machine-level section, that machine's items only;
        of each feature, the most specific level's settings."""
        seen = {tag: items for tag, items in config.items() if not levels.split(tag)[1]}
        for section in self.sections.values():
            if section.scope and section.tag in config:
                seen[section.tag] = [
                    item for item in config[section.tag] if (item.get(section.scope) or "") == machine
                ]
        for tag in self.levelled:
            if tag in config:
                seen[tag] = config[levels.key(tag, levels.winning(config, tag, machine))]
        return seen

    def on_its_own(self, config: Config, machine: str) -> Config:
        """What ``machine`` runs, as the configuration of an appliance of its own (a machine leaving
        its cluster): its machine-level items, no longer marked as its; its group's and its own settings
        of each feature as the appliance's."""
        seen = self.for_machine(config, machine)
        for section in self.sections.values():
            if section.scope and section.tag in seen:
                seen[section.tag] = [{**item, section.scope: ""} for item in seen[section.tag]]
        if levels.GROUPS in seen:
            seen[levels.GROUPS] = []
        return seen

    def machines(self, config: Config) -> list[str]:
        """The machines ``config`` holds machine-level items of, or puts in a group ("" for an appliance
        of its own)."""
        return sorted(
            {
                item.get(section.scope) or ""
                for section in self.sections.values()
                if section.scope
                for item in config.get(section.tag, [])
            }
            | {name for item in config.get(levels.GROUPS, []) for name in item["machine"]}
            or {""}
        )

    def item_named(self, config: Config, tag: str, name: str) -> Item | None:
        """The item of list section ``tag`` whose key is ``name`` (a certificate by its name)."""
        key = self.sections[tag].key
        return next((item for item in config.get(tag, []) if item[key] == name), None)

    def where_used(self, target: str, mode: levels.Mode) -> dict[str, list[str]]:
        """Name of each ``target`` item → what uses it in the candidate as ``mode`` sees it, e.g.
        "interface 'X' (HTTPS Certificate)". An item of the cluster's alone (an address list) is used by
        the group's and machine's settings as well: "… of Machine: esa2"."""
        used: dict[str, list[str]] = {}
        for section in self._referring(target):
            nested = any(
                f.references == target for f in _all_fields(section.fields) if f not in section.fields
            )
            tag = section.tag
            if target in self.levelled or tag not in self.levelled or not self.level_store:
                at_levels = [(mode.seen(tag), "")]  # (level read, level named)
            else:
                defined = [level for at, level in self.level_store.defined() if at == tag]
                at_levels = [(level, level) for level in (levels.CLUSTER, *defined)]
            for level, named in at_levels:
                _add_users(used, section, self.read(tag, level, top=not nested), target, named)
        return used

    def where_used_in(self, target: str, config: Config) -> dict[str, list[str]]:
        """As ``where_used``, in section data already read (``config``)."""
        used: dict[str, list[str]] = {}
        for section in self._referring(target):
            _add_users(used, section, config.get(section.tag, []), target, "")
        return used

    def _referring(self, target: str) -> list[Section]:
        return [s for s in self.ordered() if any(f.references == target for f in _all_fields(s.fields))]

    def references_to(self, target: str) -> list[tuple[Section, Field]]:
        """Fields of every section that name items of ``target`` ("where used")."""
        return [(section, f) for section in self.ordered() for f in section.fields if f.references == target]


def _all_fields(fields: tuple[Field, ...]):
    for f in fields:
        yield f
        yield from _all_fields(f.children)


def _add_users(used: dict[str, list[str]], section: Section, items: list[Item], target: str, level: str):
    """Add to ``used`` each user of a ``target`` item in ``items`` (of ``level``, named if not "")."""
    where = f" of {levels.describe(level)}" if level else ""
    for owner, f, name in references_in(section, items, target):
        used.setdefault(name, []).append(f"{owner}{where} ({f.label})")


def references_in(section: Section, items: list[Item], target: str | None = None):
    """(owner in words, field, name) for each item of ``target`` (None: of any section) named in
    ``items``, entries within entries included: "listener 'X': mail flow policy 'Y'"."""
    for item in items:
        owner = section.item_name(item)
        for f in section.fields:
            value = item.get(f.tag)
            if not value:
                continue
            if f.references and f.references == (target or f.references):
                yield owner, f, value
            elif f.nested and any(c.references for c in _all_fields(f.children)):
                inner = f.child_section()
                for inner_owner, inner_field, name in references_in(
                    inner, value if f.kind is Kind.ITEMS else [value], target
                ):
                    yield f"{owner}: {inner_owner}", inner_field, name


registry = Registry()

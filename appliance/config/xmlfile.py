"""The configuration file: section data to the ESA's XML and back.

The same functions write the committed versions (secrets stay sealed with the
appliance key) and the files an administrator saves (secrets masked, encrypted
with a passphrase, or plain), so save → load → save is stable by construction.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from enum import StrEnum

from django.conf import settings
from django.utils import timezone
from lxml import etree

from appliance import vault
from appliance.config import levels
from appliance.config.sections import REQUIRED, Config, Field, Item, Kind, Section, registry
from appliance.validators import validate_object_name

PRODUCT = "Mail Gateway TLS Console"
DTD_REFUSED = "the document declares its own DTD: declarations such as entities are not allowed"
_INTERNAL_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[")
VERSION = "1.0"


class SecretMode(StrEnum):
    MASK = "mask"
    ENCRYPT = "encrypt"
    PLAIN = "plain"
    SEALED = "sealed"  # committed versions inside the appliance only


class ConfigFileError(Exception):
    """A document that cannot be loaded; ``problems`` name line and element."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


# --- writing -----------------------------------------------------------------


def _text(f: Field, value, mode: SecretMode, cipher: vault.PassphraseCipher | None) -> str:
    if f.kind is Kind.BOOL:
        return "1" if value else "0"
    if f.kind is Kind.SECRET:
        if mode is SecretMode.SEALED:
            return value
        if mode is SecretMode.MASK:
            return vault.MASK
        plaintext = vault.unseal(value).strip()
        return cipher.encrypt(plaintext) if mode is SecretMode.ENCRYPT else plaintext
    return str(value).strip()


def _append_fields(parent, section: Section, item: Item, mode, cipher) -> None:
    for f in section.fields:
        value = item.get(f.tag)
        if f.attribute or f.text:
            if value is not None and value != "":
                if f.attribute:
                    parent.set(f.tag, _text(f, value, mode, cipher))
                else:
                    parent.text = _text(f, value, mode, cipher)
            continue
        if f.nested:
            entries = value if f.kind is Kind.ITEMS else [value] if value is not None else []
            target = parent
            if f.container and entries:
                last = parent[-1] if len(parent) else None
                shared = last is not None and last.tag == f.container  # the container of the field before
                target = last if shared else etree.SubElement(parent, f.container)
            for child in entries:
                _append_fields(etree.SubElement(target, f.tag), f.child_section(), child, mode, cipher)
            continue
        for one in value if f.repeated else [value]:
            if one is None or (one == "" and not f.required):
                continue  # an ESA service that is off, an empty optional setting
            etree.SubElement(parent, f.tag).text = _text(f, one, mode, cipher)


def _append_section(parent, section: Section, items: list[Item], mode, cipher) -> None:
    if section.is_scalar:
        etree.SubElement(parent, section.tag).text = _text(
            section.fields[0], items[0][section.tag], mode, cipher
        )
    elif section.is_list:
        element = etree.SubElement(parent, section.tag)
        for item in items:
            _append_fields(etree.SubElement(element, section.item_tag), section, item, mode, cipher)
    else:
        _append_fields(etree.SubElement(parent, section.tag), section, items[0], mode, cipher)


def _heading_comment(heading: str) -> etree._Comment:
    rule = "*" * 78
    return etree.Comment(f"\n{rule}\n*{heading.center(76)}*\n{rule}\n")


def render(
    config: Config,
    mode: SecretMode,
    passphrase: str | None = None,
    hostname: str = "",
) -> str:
    """The configuration file for ``config`` (every section it holds, in registry order)."""
    cipher = vault.PassphraseCipher(passphrase) if mode is SecretMode.ENCRYPT else None
    root = etree.Element("config")
    heading = None
    for section in registry.ordered():
        if section.tag not in config or (section.optional and not config[section.tag]):
            continue
        if section.heading != heading:
            heading = section.heading
            root.append(_heading_comment(heading))
        _append_section(root, section, config[section.tag], mode, cipher)
    by_level: dict[str, list[str]] = {}
    for config_key in config:
        tag, level = levels.split(config_key)
        if level:
            by_level.setdefault(level, []).append(tag)
    if by_level:
        root.append(_heading_comment("Group and Machine Levels"))
    for level in sorted(by_level, key=levels.kind_and_name):
        kind, name = levels.kind_and_name(level)
        container = etree.SubElement(root, f"{kind}_level", name=name)
        for section in registry.ordered():
            if section.tag in by_level[level]:
                _append_section(container, section, config[levels.key(section.tag, level)], mode, cipher)
    etree.indent(root, space="  ")
    body = etree.tostring(root, encoding="ISO-8859-1", xml_declaration=False).decode("latin-1")
    header = (
        f"  Product: {PRODUCT}\n"
        f"  Version: {VERSION}\n"
        # "--" may not appear in a comment; punycode host names contain it.
        f"  Hostname: {hostname.replace('--', '- -')}\n"
        f"  Platform: {platform.system()} {platform.machine()}\n"
        f"  Current Time: {timezone.localtime():%a %b %d %H:%M:%S %Y}\n"
    )
    return (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        '<!DOCTYPE config SYSTEM "config.dtd">\n\n'
        f"<!--\n{header}-->\n{body}\n"
    )


def without_header(document: str) -> str:
    """The document less its header comment (which carries the time)."""
    start = document.index("<!--")
    return document[:start] + document[document.index("-->", start) + 4 :]


# --- reading -----------------------------------------------------------------


@dataclass
class Document:
    """A parsed configuration file: the sections it contains, and where each value stood."""

    config: Config = field(default_factory=dict)
    # (section tag, item index, field tag or None) -> source line
    lines: dict[tuple[str, int, str | None], int] = field(default_factory=dict)

    def line(self, tag: str, index: int, field_tag: str | None = None) -> int | None:
        return self.lines.get((tag, index, field_tag)) or self.lines.get((tag, index, None))


class _Parser:
    def __init__(self, mode: SecretMode, passphrase: str | None):
        self.mode = mode
        self.cipher = vault.PassphraseCipher(passphrase) if passphrase else None
        self.problems: list[str] = []
        self.document = Document()
        self.level = levels.CLUSTER  # of the sections being read: inside <group_level>, <machine_level>
        self.levels_seen: set[str] = set()
        self.section_lines: dict[str, int] = {}  # config key → line of the section's element

    def where(self, section: Section) -> str:
        """The key of ``section``'s lines and data at the level being read."""
        return levels.key(section.tag, self.level)

    def problem(self, element, message: str, what: str = "") -> None:
        self.problems.append(f"line {element.sourceline}: {what or f'<{element.tag}>'} {message}")

    def value(self, f: Field, element):
        if len(element):
            self.problem(element, "must hold a value, not other elements")
            return None
        return self.convert(f, (element.text or "").strip(), element)

    def convert(self, f: Field, text: str, element, what: str = ""):
        """``text`` as the Python value of ``f``; None (and a problem) if it is not one."""
        if f.kind is Kind.BOOL:
            if text not in ("0", "1"):
                self.problem(element, f"must be 0 or 1, not {text!r}", what)
                return None
            return text == "1"
        if f.kind is Kind.INT:
            try:
                number = int(text)
            except ValueError:
                self.problem(element, f"must be a whole number, not {text!r}", what)
                return None
            if (f.minimum is not None and number < f.minimum) or (
                f.maximum is not None and number > f.maximum
            ):
                self.problem(element, f"must be between {f.minimum} and {f.maximum}, not {number}", what)
                return None
            return number
        if f.kind is Kind.SECRET and self.mode is not SecretMode.SEALED:
            return self.secret(element, text)
        return text

    def attributes_and_text(self, section: Section, element, item: Item) -> None:
        """The settings a section keeps in its element's attributes and text."""
        known = {f.tag: f for f in section.fields if f.attribute}
        for name, raw in element.attrib.items():
            f = known.get(name)
            if f is None:
                self.problem(element, f"has no attribute {name!r}")
                continue
            item[name] = self.checked(
                f, self.convert(f, raw.strip(), element, f"<{element.tag} {name}>"), element
            )
        text_field = next((f for f in section.fields if f.text), None)
        if text_field is not None:
            text = (element.text or "").strip()
            if text:
                item[text_field.tag] = self.checked(
                    text_field, self.convert(text_field, text, element), element
                )

    def checked(self, f: Field, value, element):
        """``value`` after ``f``'s own validator (a problem named by ``element`` if it refuses)."""
        if value not in (None, "") and f.validate and self.mode is not SecretMode.SEALED:
            try:
                f.validate(value)
            except ValueError as exc:
                self.problem(element, str(exc))
        return value

    def secret(self, element, text: str) -> str | None:
        if text == vault.MASK:
            self.problem(
                element,
                "holds a masked passphrase: a file saved with masked passphrases cannot be "
                "loaded; save it again with encrypted or plain passphrases",
            )
            return None
        if not vault.is_passphrase_encrypted(text):
            return text
        if self.cipher is None:
            self.problem(element, "is encrypted with a passphrase: give the passphrase to load it")
            return None
        try:
            return self.cipher.decrypt(text)
        except vault.SecretError:
            self.problem(element, "cannot be decrypted: the passphrase is wrong")
            return None

    def item(self, section: Section, element, index: int) -> Item:
        self.document.lines[(self.where(section), index, None)] = element.sourceline
        item: Item = {}
        self.attributes_and_text(section, element, item)
        containers: dict[str, dict[str, Field]] = {}
        for f in section.fields:
            if f.nested and f.container:
                containers.setdefault(f.container, {})[f.tag] = f
        entry_lines: dict[tuple[str, int], int] = {}  # (field tag, entry index) -> line, for clean_item
        seen_containers = set()
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag in containers:
                if child.tag in seen_containers:
                    self.problem(child, "appears twice")
                    continue
                seen_containers.add(child.tag)
                inside = containers[child.tag]
                for entry in child:
                    if not isinstance(entry.tag, str):
                        continue
                    if entry.tag not in inside:
                        expected = " or ".join(f"<{tag}>" for tag in inside)
                        self.problem(entry, f"does not belong in <{child.tag}> (expected {expected})")
                        continue
                    self.nested(inside[entry.tag], entry, item, entry_lines)
                continue
            try:
                f = section.field(child.tag)
                if f.attribute or f.text or f.container:
                    raise KeyError(child.tag)
            except KeyError:
                self.problem(child, f"is not a setting of <{element.tag}>")
                continue
            if f.tag in item and not f.repeated:
                self.problem(child, "appears twice")
                continue
            self.document.lines.setdefault((self.where(section), index, f.tag), child.sourceline)
            if f.nested:
                self.nested(f, child, item, entry_lines)
                continue
            value = self.value(f, child)
            if value not in (None, "") and f.validate and self.mode is not SecretMode.SEALED:
                try:
                    f.validate(value)
                except ValueError as exc:
                    self.problem(child, str(exc))
            if f.repeated:
                if value == "":
                    self.problem(child, "is empty: leave the element out instead")
                    continue
                item.setdefault(f.tag, []).append(value)
            else:
                item[f.tag] = value
        for f in section.fields:
            if f.tag not in item and f.kind is Kind.GROUP:
                item[f.tag] = f.group_default()
                if item[f.tag] is None:
                    self.problem(element, f"lacks <{f.tag}>")
            elif f.tag not in item:
                if f.default is REQUIRED:
                    self.problem(element, f"lacks <{f.tag}>")
                item[f.tag] = None if f.default is REQUIRED else f.default
                if f.repeated:
                    item[f.tag] = list(f.default)
            elif f.kind is Kind.ITEMS:
                self.duplicate_names(f.child_section(), item[f.tag], element)
        if section.clean_item and self.mode is not SecretMode.SEALED and not self.problems:
            for where, message in section.clean_item(item):
                # ``where``: a field's tag, (tag, index) of an entry of a nested field, or None: the item.
                if isinstance(where, tuple):
                    tag, line = (
                        where[0],
                        entry_lines.get(where) or self.document.line(self.where(section), index),
                    )
                else:
                    tag, line = where or element.tag, self.document.line(self.where(section), index, where)
                self.problems.append(f"line {line}: <{tag}> {message}")
        return item

    def nested(self, f: Field, element, item: Item, entry_lines: dict[tuple[str, int], int]) -> None:
        """One element of a Kind.ITEMS or Kind.GROUP field, into ``item``."""
        if f.kind is Kind.GROUP:
            if item.get(f.tag) is not None:
                self.problem(element, "appears twice")
            else:
                entry_lines[(f.tag, 0)] = element.sourceline
                item[f.tag] = self.item(f.child_section(), element, 0)
            return
        entries = item.setdefault(f.tag, [])
        entry_lines[(f.tag, len(entries))] = element.sourceline
        entries.append(self.item(f.child_section(), element, len(entries)))

    def duplicate_names(self, section: Section, items: list[Item], parent) -> None:
        seen = set()
        for item in items:
            name, key = item.get(section.key), section.item_key(item)
            if name is not None and key in seen:
                self.problem(parent, f"lists <{section.item_tag}> {name!r} twice")
            seen.add(key)

    def section(self, section: Section, element) -> list[Item]:
        if section.is_scalar:
            self.document.lines[(self.where(section), 0, section.tag)] = element.sourceline
            value = self.value(section.fields[0], element)
            if value is not None and section.fields[0].validate and self.mode is not SecretMode.SEALED:
                try:
                    section.fields[0].validate(value)
                except ValueError as exc:
                    self.problem(element, str(exc))
            return [{section.tag: value}]
        if not section.is_list:
            return [self.item(section, element, 0)]
        items, seen = [], {}
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag != section.item_tag:
                self.problem(child, f"does not belong in <{section.tag}> (expected <{section.item_tag}>)")
                continue
            item = self.item(section, child, len(items))
            name, key = item.get(section.key), section.item_key(item)
            if name is None:
                continue  # already reported as lacking its name
            if key in seen:
                self.problem(child, f"repeats the name {name!r} (first on line {seen[key]})")
            seen[key] = child.sourceline
            items.append(item)
        return items

    def top_section(self, element) -> None:
        """A section element: a child of ``<config>``, or of a level's container."""
        section = registry.get(element.tag)
        if section is None:
            self.problem(element, "is not a configuration section of this appliance")
            return
        if self.level and section.tag not in registry.levelled:
            self.problem(element, "is defined at the Cluster level only, not for a group or a machine")
            return
        if self.where(section) in self.document.config:
            self.problem(
                element, "appears twice: each section may appear once" + (" at a level" if self.level else "")
            )
            return
        self.section_lines[self.where(section)] = element.sourceline
        self.document.config[self.where(section)] = self.section(section, element)

    def levels_without_their_section(self) -> None:
        """A group's or machine's settings of a section the file does not hold: loading replaces a section
        at every level, so the file must hold the cluster's as well."""
        for config_key, line in self.section_lines.items():
            tag, level = levels.split(config_key)
            if level and tag not in self.document.config:
                self.problems.append(
                    f"line {line}: <{tag}> is defined for {levels.describe(level)} but not at the top of the "
                    "file: a file holding a section holds the cluster's settings of it too"
                )

    def level_container(self, element) -> None:
        """``<group_level name="G">`` or ``<machine_level name="M">``: that level's own settings."""
        kind = LEVEL_CONTAINERS[element.tag]
        name = (element.get("name") or "").strip()
        unknown = [attribute for attribute in element.attrib if attribute != "name"]
        if unknown:
            self.problem(element, f"has no attribute {unknown[0]!r}")
            return
        try:
            validate_object_name(name)
        except ValueError as error:
            self.problem(element, f"needs the name of a {kind}: the name {error}")
            return
        level = f"{kind}:{name}"
        if level in self.levels_seen:
            self.problem(element, f"appears twice for {levels.describe(level)}")
            return
        self.levels_seen.add(level)
        self.level = level
        for child in element:
            if isinstance(child.tag, str):
                self.top_section(child)
        self.level = levels.CLUSTER

    def seal_secrets(self) -> None:
        for config_key, items in self.document.config.items():
            section = registry.get(levels.split(config_key)[0])
            secret_fields = [f.tag for f in section.fields if f.kind is Kind.SECRET]
            for item in items:
                for name in secret_fields:
                    if item.get(name):
                        item[name] = vault.seal(item[name])


LEVEL_CONTAINERS = {f"{levels.GROUP}_level": levels.GROUP, f"{levels.MACHINE}_level": levels.MACHINE}


def size_limit_text() -> str:
    """The configuration file size limit in the admin's units."""
    limit = settings.CONFIG_FILE_MAX_BYTES
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if limit >= size:
            return f"{limit / size:.3g} {unit}"
    return f"{limit} bytes"


def _xml_parser() -> etree.XMLParser:
    # No entity expansion, no DTD loading, no network; comments are not settings.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(data: bytes, mode: SecretMode = SecretMode.PLAIN, passphrase: str | None = None) -> Document:
    """Parse a configuration file into the sections it contains, or raise ConfigFileError."""
    if len(data) > settings.CONFIG_FILE_MAX_BYTES:
        raise ConfigFileError([f"the file is larger than the limit of {size_limit_text()}"])
    if not data.strip():
        raise ConfigFileError(["the file is empty: no data to load"])
    if b"<!ENTITY" in data or _INTERNAL_SUBSET.search(data):  # refused before libxml2 sees them
        raise ConfigFileError([DTD_REFUSED])
    try:
        root = etree.fromstring(data, _xml_parser())
    except etree.XMLSyntaxError as exc:
        raise ConfigFileError([f"line {exc.lineno}: not well-formed XML ({exc.msg})"]) from None
    dtd = root.getroottree().docinfo.internalDTD  # also set for a bare <!DOCTYPE config SYSTEM …>
    if dtd is not None and (any(dtd.iterentities()) or any(dtd.iterelements())):
        raise ConfigFileError([DTD_REFUSED])
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise ConfigFileError(["the document uses entity references, which are not allowed"])
    if root.tag != "config":
        raise ConfigFileError(
            [f"line {root.sourceline}: the root element must be <config>, not <{root.tag}>"]
        )

    parser = _Parser(mode, passphrase)
    for element in root:
        if isinstance(element.tag, str) and element.tag in LEVEL_CONTAINERS:
            parser.level_container(element)
        elif isinstance(element.tag, str):
            parser.top_section(element)
    if not parser.problems:
        parser.levels_without_their_section()
    if parser.problems:
        raise ConfigFileError(parser.problems)
    if mode is SecretMode.SEALED:  # a committed version: whole, so a section left out has no items
        for section in registry.ordered():
            if section.optional:
                parser.document.config.setdefault(section.tag, [])
    else:
        parser.seal_secrets()
    return parser.document

"""Mail Policies > Address Lists: named lists of addresses and domains (candidate rows, ``<address_lists>``).

A mail flow policy's "TLS is Mandatory for Address List" names one: envelope
senders that match it must use TLS. Entries take the ESA's four forms:

  ``user@example.com``  that address;
  ``example.com``       any address at example.com (not its subdomains);
  ``@.example.com``     any address at a subdomain of example.com (not example.com itself);
  ``user@``             that user part at any domain.

Matching ignores case. ``matches()`` reads the running configuration unless
given another, as the SMTP service will.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator, EmailValidator

from appliance import workflow
from appliance.config import levels
from appliance.config.sections import Config, Field, Item, Section, registry
from appliance.validators import validate_object_name
from listeners.models import AddressList, Listener, MailFlowPolicy

FORMS = "user@example.com, example.com, @.example.com or user@"


class AddressListRefused(workflow.ChangeRefused):
    """An address list the appliance refuses; the message says which and why."""


class AddressListNotFound(LookupError):
    """``matches()`` was asked about a list the configuration does not hold."""


# --- entries ---------------------------------------------------------------------

_domain = DomainNameValidator()
_email = EmailValidator()


def _valid(check, value: str) -> bool:
    try:
        check(value)
    except ValidationError:
        return False
    return True


def validate_entry(value: str) -> None:
    """ValueError unless ``value`` is one of the four entry forms."""
    if value.startswith("@."):
        ok = _valid(_domain, value[2:])
    elif value.endswith("@"):
        ok = value.count("@") == 1 and _valid(_email, value + "example.com")
    elif "@" in value:
        ok = _valid(_email, value)
    else:
        ok = _valid(_domain, value)
    if not ok:
        raise ValueError(f"{value!r} is not an address list entry ({FORMS})")


def clean_entries(entries: list[str]) -> list[str]:
    """The entries stripped, blank lines dropped; AddressListRefused naming the first bad or repeated one."""
    cleaned, seen = [], set()
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            validate_entry(entry)
        except ValueError as exc:
            raise AddressListRefused(f"The entry {exc}") from None
        if entry.lower() in seen:
            raise AddressListRefused(f"The entry {entry!r} is listed twice")
        seen.add(entry.lower())
        cleaned.append(entry)
    if not cleaned:
        raise AddressListRefused(f"An address list needs at least one entry ({FORMS})")
    return cleaned


def entry_matches(entry: str, address: str) -> bool:
    """Whether one entry covers ``address`` (user@domain, compared without regard to case)."""
    local, at, domain = address.strip().removeprefix("<").removesuffix(">").lower().rpartition("@")
    if not at or not local or not domain:
        return False
    entry = entry.lower()
    if entry.startswith("@."):
        return domain.endswith(entry[1:])
    if entry.endswith("@"):
        return local == entry[:-1]
    if "@" in entry:
        return f"{local}@{domain}" == entry
    return domain == entry


def matches(list_name: str, address: str, config: Config | None = None) -> bool:
    """Whether ``address`` matches an entry of the list named ``list_name`` (running configuration by default)."""
    config = workflow.running_config() if config is None else config
    item = next((i for i in config.get("address_lists", []) if i["address_list_name"] == list_name), None)
    if item is None:
        raise AddressListNotFound(f"There is no address list named '{list_name}'")
    return any(entry_matches(entry, address) for entry in item["address"])


# --- the <address_lists> section ----------------------------------------------------


def _read() -> list[Item]:
    return [
        {"address_list_name": a.name, "description": a.description, "address": list(a.entries)}
        for a in AddressList.objects.all()
    ]


def _write(items: list[Item]) -> None:
    AddressList.objects.all().delete()
    AddressList.objects.bulk_create(
        AddressList(name=item["address_list_name"], description=item["description"], entries=item["address"])
        for item in items
    )


def _clean(item: Item) -> list[tuple[str | None, str]]:
    if not item["address"]:
        return [(None, "lacks <address>: an address list needs at least one entry")]
    try:
        clean_entries(item["address"])
    except AddressListRefused as exc:
        return [("address", str(exc))]
    return []


def register_section() -> None:
    registry.register(
        Section(
            tag="address_lists",
            title="Address Lists",
            heading="Mail Policies",
            position=55,
            item_tag="address_list",
            key="address_list_name",
            fields=(
                Field("address_list_name", "Name", validate=validate_object_name),
                Field("description", "Description", default=""),
                Field("address", "Addresses", repeated=True, validate=validate_entry),
            ),
            read=_read,
            write=_write,
            clean_item=_clean,
        )
    )


# --- what an administrator does (inside workflow.submit) ------------------------------


def get(name: str) -> AddressList:
    address_list = AddressList.objects.filter(name=name).first()
    if address_list is None:
        raise AddressListRefused(f"There is no address list named '{name}'")
    return address_list


def _check_name(name: str) -> None:
    try:
        validate_object_name(name)
    except ValueError as exc:
        raise AddressListRefused(f"The address list name {exc}") from None
    if AddressList.objects.filter(name=name).exists():
        raise AddressListRefused(f"An address list named '{name}' already exists")


def create(name: str, entries: list[str], description: str = "") -> None:
    _check_name(name)
    AddressList.objects.create(name=name, description=description.strip(), entries=clean_entries(entries))


def edit(
    name: str,
    *,
    new_name: str | None = None,
    description: str | None = None,
    entries: list[str] | None = None,
) -> None:
    """Change what is given (None: keep); ``entries`` replaces the whole list."""
    address_list = get(name)
    if new_name is not None and new_name != name:
        _check_name(new_name)
        address_list.name = new_name
        # The mail flow policies that name it follow the new name.
        MailFlowPolicy.objects.filter(tls_mandatory_address_list=name).update(
            tls_mandatory_address_list=new_name
        )
        Listener.every_level.filter(default_tls_mandatory_address_list=name).update(
            default_tls_mandatory_address_list=new_name
        )
    if description is not None:
        address_list.description = description.strip()
    if entries is not None:
        address_list.entries = clean_entries(entries)
    address_list.save()


def delete(name: str) -> None:
    """Delete Address List; refused while a mail flow policy names it (TLS is Mandatory for Address List)."""
    address_list = get(name)
    # An address list is the cluster's alone: its users are those of every level, whatever the mode.
    users = registry.where_used("address_lists", levels.CLUSTER_MODE).get(name)
    if users:
        raise AddressListRefused(f"'{name}' cannot be deleted while it is used by {', '.join(users)}")
    address_list.delete()

"""Alerts: their classes and severities, who receives them, and how they are worded, in one place.

Everything that raises an alert (a required TLS connection that failed, a certificate nearing its
end) names an ``AlertClass`` and a ``Severity`` from here and words its subject with ``subject``;
the gateway sends it (``gateway.alert_mail``) to ``recipients_for`` the class and severity, as
System Administration > Alerts subscribes them in the running configuration.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from appliance import workflow
from appliance.config.sections import Config, Field, Item, Section, registry
from appliance.models import AlertClass, AlertRecipient, Severity

ALL = "all"  # a recipient's shortcut for every class (or every severity)


# As the ESA's subjects write the severity: "Warning <System> esa.example.com: …".
_SUBJECT_WORDS = {Severity.CRITICAL: "Critical", Severity.WARNING: "Warning", Severity.INFORMATION: "Info"}


def subject(alert_class: str, severity: str, hostname: str, summary: str) -> str:
    return f"{_SUBJECT_WORDS[severity]} <{AlertClass(alert_class).label}> {hostname}: {summary}"


def recipients_for(alert_class: str, severity: str, config: Config | None = None) -> list[str]:
    """The addresses subscribed to ``alert_class`` at ``severity`` (running configuration by default)."""
    if alert_class not in AlertClass.values:
        raise ValueError(f"{alert_class!r} is not an alert class")
    if severity not in Severity.values:
        raise ValueError(f"{severity!r} is not a severity")
    if config is None:
        config = workflow.running_config()
    return [
        item["address"]
        for item in config.get("alerts", [])
        if {alert_class, ALL} & set(item["alert_class"]) and {severity, ALL} & set(item["severity"])
    ]


# --- System Administration > Alerts, alertconfig: the recipients (candidate rows, ``<alerts>``) ---


class AlertRefused(workflow.ChangeRefused):
    """An alert recipient the appliance refuses; the message says which and why."""


# --- validation -----------------------------------------------------------------


def validate_address(value: str) -> None:
    try:
        EmailValidator()(value)
    except ValidationError:
        raise ValueError(f"{value!r} is not an email address (user@example.com)") from None


def _choice_validator(choices, what: str):
    def validate(value: str) -> None:
        if value != ALL and value not in choices.values:
            raise ValueError(f"{value!r} is not {what} ({', '.join([ALL, *choices.values])})")

    return validate


validate_alert_class = _choice_validator(AlertClass, "an alert class")
validate_severity = _choice_validator(Severity, "a severity")


def expand(choices, values: Iterable[str], what: str) -> list[str]:
    """The chosen values in their canonical order, ``all`` standing for every one; refused if none."""
    chosen = set(values)
    check = _choice_validator(choices, what)
    for value in chosen:
        try:
            check(value)
        except ValueError as exc:
            raise AlertRefused(str(exc)) from None
    if not chosen:
        raise AlertRefused(f"Choose at least one {what.removeprefix('an ').removeprefix('a ')}")
    return [value for value in choices.values if ALL in chosen or value in chosen]


# --- the <alerts> section --------------------------------------------------------


def _read() -> list[Item]:
    return [
        {"address": r.address, "alert_class": list(r.alert_classes), "severity": list(r.severities)}
        for r in AlertRecipient.objects.all()
    ]


def _write(items: list[Item]) -> None:
    AlertRecipient.objects.all().delete()
    AlertRecipient.objects.bulk_create(
        AlertRecipient(
            address=item["address"],
            alert_classes=expand(AlertClass, item["alert_class"], "an alert class"),
            severities=expand(Severity, item["severity"], "a severity"),
        )
        for item in items
    )


def _clean(item: Item) -> list[tuple[str | None, str]]:
    problems = []
    if not item["alert_class"]:
        problems.append((None, "lacks <alert_class>: give at least one (or all)"))
    if not item["severity"]:
        problems.append((None, "lacks <severity>: give at least one (or all)"))
    return problems


def register_section() -> None:
    registry.register(
        Section(
            tag="alerts",
            title="Alerts",
            heading="System Configuration",
            position=880,
            item_tag="alert_recipient",
            key="address",
            fields=(
                Field("address", "Recipient Address", validate=validate_address),
                Field("alert_class", "Alert Classes", repeated=True, validate=validate_alert_class),
                Field("severity", "Severities", repeated=True, validate=validate_severity),
            ),
            read=_read,
            write=_write,
            clean_item=_clean,
        )
    )


# --- what an administrator does (inside workflow.submit) ----------------------------


def get(address: str) -> AlertRecipient:
    recipient = AlertRecipient.objects.filter(address=address).first()
    if recipient is None:
        raise AlertRefused(f"There is no alert recipient {address}")
    return recipient


def _check_address(address: str, current: AlertRecipient | None = None) -> None:
    try:
        validate_address(address)
    except ValueError as exc:
        raise AlertRefused(f"The recipient address {exc}") from None
    taken = AlertRecipient.objects.filter(address__iexact=address)
    if current is not None:
        taken = taken.exclude(pk=current.pk)
    if taken.exists():
        raise AlertRefused(f"{address} already receives alerts: edit that recipient instead")


def create(address: str, alert_classes: Iterable[str], severities: Iterable[str]) -> None:
    _check_address(address)
    AlertRecipient.objects.create(
        address=address,
        alert_classes=expand(AlertClass, alert_classes, "an alert class"),
        severities=expand(Severity, severities, "a severity"),
    )


def edit(
    address: str,
    *,
    new_address: str | None = None,
    alert_classes: Iterable[str] | None = None,
    severities: Iterable[str] | None = None,
) -> None:
    """Change what is given (None: keep)."""
    recipient = get(address)
    if new_address is not None and new_address != address:
        _check_address(new_address, recipient)
        recipient.address = new_address
    if alert_classes is not None:
        recipient.alert_classes = expand(AlertClass, alert_classes, "an alert class")
    if severities is not None:
        recipient.severities = expand(Severity, severities, "a severity")
    recipient.save()


def delete(address: str) -> None:
    get(address).delete()

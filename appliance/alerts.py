"""Alerts: their classes and severities, who receives them, and how they are worded, in one place.

Everything that raises an alert (a required TLS connection that failed, a certificate nearing its
end) names an ``AlertClass`` and a ``Severity`` from here and words its subject with ``subject``;
the gateway sends it (``gateway.alert_mail``) to ``recipients_for`` the class and severity, as
System Administration > Alerts subscribes them in the running configuration.
"""

from __future__ import annotations

from django.db import models

from appliance import workflow
from appliance.config.sections import Config

ALL = "all"  # a recipient's shortcut for every class (or every severity)


class AlertClass(models.TextChoices):
    SYSTEM = "system", "System"
    HARDWARE = "hardware", "Hardware"
    UPDATER = "updater", "Updater"
    ANTIVIRUS = "antivirus", "Anti-Virus"
    ANTISPAM = "antispam", "Anti-Spam"
    DHAP = "dhap", "Directory Harvest Attack Prevention"
    OUTBREAK = "outbreak", "Virus Outbreak Filters"
    CLUSTERING = "clustering", "Clustering"


class Severity(models.TextChoices):
    """The one scale of how bad a thing is, for alerts and for the certificate diagnostics alike."""

    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFORMATION = "information", "Information"


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

"""Forms of Destination Controls, Mail Delivery, LDAP and URL Filtering; field names follow the ESA's where known.

Validators are the configuration file's (``destinations.validators``); certificate
selectors list the store through ``certificates.selectors.certificate_choices``.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from appliance.config import levels
from appliance.forms import CheckedForm, config_validator, uploaded_text
from appliance.validators import validate_object_name
from certificates.selectors import certificate_choices
from destinations import delivery_settings
from destinations.entries import Entry, shown
from destinations.models import DELIVERY_LIMITS, LDAPS_PORT, LIMITS, IpPreference, LimitsApplyTo, TlsSupport
from destinations.validators import (
    DESTINATION_SYNTAX,
    canonical_destination,
    validate_bind_dn,
    validate_dn,
    validate_endpoint,
    validate_host,
)

UNCHANGED = "(unchanged)"


class CertificateField(forms.ChoiceField):
    """A certificate selector: a blank choice, then the certificates of the level the form is made for
    (``CertificateChoices``)."""

    def __init__(self, *, blank: str, **kwargs):
        super().__init__(required=False, **kwargs)
        self.blank = blank


class CertificateChoices:
    """A form whose certificate selectors offer the certificates of ``certificates_level`` (the level
    whose certificates the administrator's mode sees), read when the form is made."""

    def __init__(self, *args, certificates_level: str, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, CertificateField):
                field.choices = certificate_choices(certificates_level, blank=field.blank)


class DestinationControlsForm(CertificateChoices, CheckedForm):
    """Mail Policies > Destination Controls > Edit Global Settings (ESA ids ``certificate``, ``send_tls_req_alert``)."""

    certificate = CertificateField(
        label="Certificate",
        blank="None (no certificate on outgoing TLS)",
        help_text="Presented on every outgoing TLS connection, when the receiving server asks for one. "
        "A global setting, not one per destination.",
    )
    send_tls_req_alert = forms.BooleanField(
        label="Send an alert when a required TLS connection fails",
        required=False,
        help_text="When TLS negotiation fails while delivering to a destination whose TLS Support is "
        "Required or Required - Verify, the appliance sends an alert that names the destination domain "
        "to the recipients of Warning alerts of the System type (System Administration > Alerts). "
        "A global setting, not one per destination.",
    )


def _seconds_field(tag: str, help_text: str) -> forms.IntegerField:
    return _delivery_number(tag, f"{help_text} In seconds, from {{low:,}} to {{high:,}}.")


def _delivery_number(tag: str, help_text: str) -> forms.IntegerField:
    low, high = DELIVERY_LIMITS[tag]
    wrong = f"Give a whole number from {low:,} to {high:,}."
    return forms.IntegerField(
        label=delivery_settings.LABELS[tag],
        min_value=low,
        max_value=high,
        help_text=help_text.format(low=low, high=high),
        error_messages={"min_value": wrong, "max_value": wrong, "invalid": wrong},
    )


class MailDeliveryForm(forms.Form):
    """Network > Mail Delivery > Edit Settings; fields named as the ``<delivery>`` elements."""

    default_delivery_interface = forms.ChoiceField(
        label=delivery_settings.LABELS[delivery_settings.INTERFACE],
        required=False,
        help_text=(
            "The IP interface mail leaves from: its address is the source address and its hostname the "
            "name the appliance gives in EHLO, which receiving servers may check. Auto: the address the "
            "operating system chooses, with the appliance's hostname."
        ),
    )
    max_concurrency = _delivery_number(
        "max_concurrency",
        "Outgoing connections open at once, to all destinations together ({low:,} to {high:,}). "
        "Destination Controls limit each destination below this.",
    )
    max_tls_concurrency = _delivery_number(
        "max_tls_concurrency",
        "Of those, connections using TLS at once ({low:,} to {high:,}).",
    )
    max_queue_lifetime = _seconds_field(
        "max_queue_lifetime",
        "A message still not delivered this long after it was received is bounced to its sender "
        "(259,200 seconds = 72 hours).",
    )
    initial_retry = _seconds_field(
        "initial_retry",
        "After a temporary failure, the wait before the first retry; each later retry waits twice as "
        "long as the one before.",
    )
    max_retry_interval = _seconds_field(
        "max_retry_interval",
        "The longest wait between two retries: the doubling stops here (3,600 seconds = 1 hour). "
        "At least the initial wait.",
    )

    def __init__(self, *args, mode: levels.Mode, **kwargs):
        """``mode``: the administrator's, whose machine's interfaces are offered."""
        super().__init__(*args, **kwargs)
        self.fields["default_delivery_interface"].choices = delivery_settings.interface_choices(mode)

    def clean(self):
        cleaned = super().clean()
        initial, maximum = cleaned.get("initial_retry"), cleaned.get("max_retry_interval")
        if initial is not None and maximum is not None:
            if problem := delivery_settings.retry_problem(initial, maximum):
                self.add_error("max_retry_interval", f"{problem}.")
        return cleaned


class LdapSettingsForm(CertificateChoices, forms.Form):
    """System Administration > LDAP > LDAP Global Settings."""

    certificate = CertificateField(
        label="Certificate",
        blank="None (no client certificate)",
        help_text="Presented as the client certificate on every LDAPS connection the appliance makes.",
    )


class LdapServerForm(forms.Form):
    """An LDAP server profile. The bind password is never shown: empty keeps the stored one."""

    name = forms.CharField(
        label="LDAP Server Profile Name",
        max_length=64,
        validators=[config_validator(validate_object_name)],
    )
    host = forms.CharField(label="Host Name", max_length=253, validators=[config_validator(validate_host)])
    use_ssl = forms.BooleanField(label="Use SSL", required=False, initial=True)
    port = forms.IntegerField(
        label="Port",
        min_value=1,
        max_value=65535,
        initial=LDAPS_PORT,
        help_text="636 with SSL (LDAPS), 389 without; 3269 and 3268 for an Active Directory Global Catalog.",
    )
    bind_dn = forms.CharField(
        label="Bind DN",
        max_length=1024,
        required=False,
        validators=[config_validator(validate_bind_dn)],
        help_text="Empty: anonymous bind. A DN (cn=mail,ou=services,dc=example,dc=com) or user@example.com.",
    )
    bind_password = forms.CharField(
        label="Bind password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
    )
    base_dn = forms.CharField(
        label="Base DN",
        max_length=1024,
        required=False,
        validators=[config_validator(validate_dn)],
    )

    def __init__(self, *args, has_password: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.has_password = has_password
        if has_password:
            self.fields["bind_password"].widget.attrs["placeholder"] = UNCHANGED
            self.fields["bind_password"].help_text = f"{UNCHANGED}: leave empty to keep the stored password."

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("bind_password") and not cleaned.get("bind_dn"):
            self.add_error("bind_dn", "A bind password needs a Bind DN: give the DN to bind as.")
        return cleaned

    @property
    def new_password(self) -> str | None:
        """The password typed, or None to keep the stored one."""
        return self.cleaned_data["bind_password"] or None


class UrlFilteringForm(CertificateChoices, forms.Form):
    """Security Services > URL Filtering: Edit Global Settings."""

    enabled = forms.BooleanField(label="Enable URL Category and Reputation Filters", required=False)
    endpoint = forms.CharField(
        label="Web Security Services endpoint",
        max_length=300,
        required=False,
        validators=[config_validator(validate_endpoint)],
        help_text="host:port, e.g. wss.example.com:443 ([2001:db8::1]:443 for IPv6).",
    )
    client_certificate = CertificateField(
        label="Certificate for Web Security Services authentication",
        blank="None (no client certificate)",
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("enabled") and not cleaned.get("endpoint") and "endpoint" not in self.errors:
            self.add_error("endpoint", "Give the endpoint (host:port) to enable URL Filtering.")
        return cleaned


# --- Destination Controls entries ------------------------------------------------

# What each TLS Support choice does on delivery: the ESA's words (ESA-REFERENCE §4.3 and the
# guide's "Ausgehendes TLS aktivieren"), shown next to the choice.
TLS_MEANINGS = {
    TlsSupport.NONE: (
        "TLS is not negotiated for outgoing connections from the interface to the MTA for the domain."
    ),
    TlsSupport.PREFERRED: (
        "TLS is negotiated from the interface to the MTA(s) for the domain. However, if the TLS "
        "negotiation fails (prior to receiving a 220 response), the SMTP transaction will continue "
        "“in the clear” (not encrypted). No attempt is made to verify if the certificate originates "
        "from a trusted certificate authority. If an error occurs after the 220 response is received "
        "the SMTP transaction does not fall back to clear text."
    ),
    TlsSupport.REQUIRED: (
        "TLS is negotiated from the interface to the MTA(s) for the domain. No attempt is made to verify "
        "the domain's certificate. If the negotiation fails, no email is sent through the connection: the "
        "message stays in the queue. If the negotiation succeeds, the mail is delivered via an encrypted "
        "session."
    ),
    TlsSupport.PREFERRED_VERIFY: (
        "TLS is negotiated from the appliance to the MTA(s) for the domain, and the appliance attempts to "
        "verify the domain certificate. TLS is negotiated and the certificate is verified: the mail is "
        "delivered via an encrypted session. TLS is negotiated, but the certificate is not verified: the "
        "mail is still delivered via an encrypted session. No TLS connection is made: the message is "
        "delivered in plain text."
    ),
    TlsSupport.REQUIRED_VERIFY: (
        "TLS is negotiated from the appliance to the MTA(s) for the domain, and verification of the domain "
        "certificate is required: signed by a trusted certificate authority, with a name that matches the "
        "domain. TLS is negotiated and the certificate is verified: the message is delivered via an "
        "encrypted session. TLS is negotiated, but the certificate is not verified: the mail is not "
        "delivered (it stays in the queue). No TLS connection is negotiated: the mail is not delivered."
    ),
}


def default_tls_meanings(default: Entry, for_default: bool) -> dict[str, str]:
    """TLS_MEANINGS, and for an entry other than the Default entry, what its Default choice stands for."""
    if for_default:
        return TLS_MEANINGS
    inherited = TlsSupport(default.tls)
    return {
        TlsSupport.DEFAULT: f"The Default entry's TLS Support, now {inherited.label}. {TLS_MEANINGS[inherited]}",
        **TLS_MEANINGS,
    }


def _limit_validator(attribute: str):
    low, high = LIMITS[attribute]

    def validate(value):
        if value is not None and not low <= value <= high:
            raise ValidationError(f"Give a number from {low:,} to {high:,}.")

    return validate


class DestinationForm(CheckedForm):
    """Add Destination / Edit Destination (ESA ids ``new_name``, ``table_tls``, ``ip_sort_pref``…).

    For an entry, an empty setting is "Use Default": the Default entry's value. The Default
    entry has no Destination field and no Default choices; its empty Recipients is No Limit.
    """

    new_name = forms.CharField(
        label="Destination",
        max_length=260,
        validators=[config_validator(canonical_destination)],
        help_text=f"{DESTINATION_SYNTAX[0].upper()}{DESTINATION_SYNTAX[1:]}.",
    )
    table_tls = forms.ChoiceField(
        label="TLS Support",
        choices=TlsSupport.choices,
        help_text="Whether delivery to this destination uses TLS, and whether the certificate of its mail "
        "servers is verified.",
    )
    ip_sort_pref = forms.ChoiceField(label="IP Address Preference", required=False)
    max_host_concurrency = forms.IntegerField(
        label="Concurrent Connections", required=False, validators=[_limit_validator("max_connections")]
    )
    max_messages_per_connection = forms.IntegerField(
        label="Maximum Messages Per Connection",
        required=False,
        validators=[_limit_validator("max_messages_per_connection")],
    )
    recipient_limit = forms.IntegerField(
        label="Recipients per Minute",
        required=False,
        validators=[_limit_validator("max_recipients_per_minute")],
    )
    limits_apply_to = forms.ChoiceField(label="Apply Limits Per Destination", required=False)

    FIELDS = {  # form field → Entry attribute
        "table_tls": "tls",
        "ip_sort_pref": "ip_preference",
        "max_host_concurrency": "max_connections",
        "max_messages_per_connection": "max_messages_per_connection",
        "recipient_limit": "max_recipients_per_minute",
        "limits_apply_to": "limits_apply_to",
    }

    def __init__(self, *args, default: Entry, for_default: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.for_default = for_default
        self.meanings = {"table_tls": default_tls_meanings(default, for_default)}
        fields = self.fields
        fields["ip_sort_pref"].choices = IpPreference.choices
        fields["limits_apply_to"].choices = LimitsApplyTo.choices
        if for_default:
            del fields["new_name"]
            fields["table_tls"].choices = TlsSupport.choices[1:]
            for name in (
                "ip_sort_pref",
                "max_host_concurrency",
                "max_messages_per_connection",
                "limits_apply_to",
            ):
                fields[name].required = True
            fields["recipient_limit"].help_text = "Empty: No Limit."
            fields["recipient_limit"].widget.attrs["placeholder"] = "No Limit"
        else:
            for name, attribute in self.FIELDS.items():
                inherited = shown(attribute, getattr(default, attribute), on_default=True)
                field = fields[name]
                if isinstance(field, forms.ChoiceField):
                    blank = [] if name == "table_tls" else [("", f"Default ({inherited})")]
                    field.choices = blank + [
                        (value, f"Default ({inherited})" if value == TlsSupport.DEFAULT else label)
                        for value, label in field.choices
                    ]
                else:
                    field.help_text = f"Empty: Use Default ({inherited})."
                    field.widget.attrs["placeholder"] = "Use Default"

    @classmethod
    def initial_for(cls, entry: Entry) -> dict:
        initial = {name: getattr(entry, attribute) for name, attribute in cls.FIELDS.items()}
        return {"new_name": entry.name, **initial}

    def entry(self, name: str | None = None) -> Entry:
        """The entry the form describes (the Default entry's form has no name: give it)."""
        data = self.cleaned_data
        values = {attribute: data[name] for name, attribute in self.FIELDS.items()}
        values = {key: None if value in ("", None) else value for key, value in values.items()}
        return Entry(name or data["new_name"], **values)


class ImportTableForm(forms.Form):
    """Import Table...: a text file, one entry a line (``destinations.tablefile``)."""

    table = forms.FileField(
        label="Destination table file",
        help_text="Replaces the whole table when you submit. Export Table... writes this format.",
    )

    def clean_table(self):
        upload = self.cleaned_data["table"]
        return uploaded_text(upload)


class LookupForm(forms.Form):
    address = forms.CharField(
        label="Recipient address or domain",
        max_length=320,
        widget=forms.TextInput(attrs={"placeholder": "user@host.sub.example.com"}),
    )

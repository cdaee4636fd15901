"""Forms of Destination Controls, LDAP and URL Filtering; field names follow the ESA's where known.

Validators are the configuration file's (``destinations.validators``); certificate
selectors list the store through ``certificates.selectors.certificate_choices``.
"""

from __future__ import annotations

from django import forms

from appliance.forms import config_validator
from appliance.validators import validate_object_name
from certificates.selectors import certificate_choices
from destinations.models import LDAPS_PORT
from destinations.validators import validate_bind_dn, validate_dn, validate_endpoint, validate_host

UNCHANGED = "(unchanged)"


class CertificateField(forms.ChoiceField):
    """A certificate selector: the store's certificates, read when the form is made, and a blank choice."""

    def __init__(self, *, blank: str, **kwargs):
        super().__init__(choices=lambda: certificate_choices(blank=blank), required=False, **kwargs)


class DestinationControlsForm(forms.Form):
    """Mail Policies > Destination Controls > Edit Global Settings (ESA ids ``certificate``, ``send_tls_req_alert``)."""

    certificate = CertificateField(
        label="Certificate",
        blank="None (no certificate on outgoing TLS)",
        help_text="Presented on every outgoing TLS connection, when the receiving server asks for one.",
    )
    send_tls_req_alert = forms.BooleanField(
        label="Send an alert when a required TLS connection fails",
        required=False,
        help_text="Sent to the recipients of Warning alerts of the System type; it names the destination domain.",
    )


class LdapSettingsForm(forms.Form):
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


class UrlFilteringForm(forms.Form):
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

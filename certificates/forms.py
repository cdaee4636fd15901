"""Forms of Network > Certificates; field names follow the ESA's (common_name, org_unit, expiration…)."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

from appliance.forms import config_validator
from appliance.validators import validate_object_name
from certificates.pki import KeyType, Pkcs12Profile, Subject, validate_alternative_name, validate_country
from certificates.store import MAX_DAYS

MAX_UPLOAD_BYTES = 1024 * 1024  # certificates and PKCS#12 files are a few KiB


class UploadField(forms.FileField):
    """A certificate-sized file: refused before it is read when it is larger than any certificate."""

    def clean(self, data, initial=None):
        upload = super().clean(data, initial)
        if upload and upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"The file is {upload.size // 1024} KiB: larger than any certificate file "
                f"({MAX_UPLOAD_BYTES // 1024} KiB at most)."
            )
        return upload


def uploaded_bytes(upload) -> bytes:
    return b"".join(upload.chunks())


class SelfSignedForm(forms.Form):
    name = forms.CharField(
        label="Certificate Name", max_length=64, validators=[config_validator(validate_object_name)]
    )
    common_name = forms.CharField(label="Common Name", max_length=64)
    organization = forms.CharField(label="Organization", max_length=64, required=False)
    org_unit = forms.CharField(label="Organizational Unit", max_length=64, required=False)
    city = forms.CharField(label="City (Locality)", max_length=128, required=False)
    state = forms.CharField(label="State (Province)", max_length=128, required=False)
    country = forms.CharField(
        label="Country (2 letters only)",
        max_length=2,
        required=False,
        validators=[config_validator(validate_country)],
    )
    expiration = forms.IntegerField(
        label="Duration before expiration (days)", min_value=1, max_value=MAX_DAYS, initial=3650
    )
    alternative_names = forms.CharField(
        label="Subject Alternative Names (Domains)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="DNS names or IP addresses, separated by commas or lines. Empty: the Common Name.",
    )
    key_type = forms.ChoiceField(label="Private Key", choices=KeyType.choices, initial=KeyType.RSA2048)

    def clean_country(self):
        return self.cleaned_data["country"].upper()

    def clean_alternative_names(self):
        names = [n for n in re.split(r"[\s,]+", self.cleaned_data["alternative_names"]) if n]
        for name in names:
            config_validator(validate_alternative_name)(name)
        return names

    def subject(self) -> Subject:
        data = self.cleaned_data
        return Subject(
            common_name=data["common_name"],
            organization=data["organization"],
            organizational_unit=data["org_unit"],
            city=data["city"],
            state=data["state"],
            country=data["country"],
        )


class ImportForm(forms.Form):
    cert_file = UploadField(label="PKCS#12 file (.p12, .pfx)")
    cert_pass = forms.CharField(label="Password", widget=forms.PasswordInput, required=False, strip=False)
    name = forms.CharField(
        label="Certificate Name",
        max_length=64,
        required=False,
        validators=[config_validator(validate_object_name)],
        help_text="Empty: the certificate's Common Name.",
    )
    accept_dates = forms.BooleanField(label="Accept an expired or not yet valid certificate", required=False)


class PasteForm(forms.Form):
    name = forms.CharField(
        label="Certificate Name", max_length=64, validators=[config_validator(validate_object_name)]
    )
    certificate = forms.CharField(label="Certificate (PEM)", widget=forms.Textarea(attrs={"rows": 8}))
    private_key = forms.CharField(
        label="Private key (PEM, RSA or EC)", widget=forms.Textarea(attrs={"rows": 8})
    )
    key_passphrase = forms.CharField(
        label="Key passphrase",
        widget=forms.PasswordInput,
        required=False,
        strip=False,
        help_text="Only for an encrypted private key.",
    )
    intermediates = forms.CharField(
        label="Intermediate certificates (PEM)", widget=forms.Textarea(attrs={"rows": 6}), required=False
    )
    accept_dates = forms.BooleanField(label="Accept an expired or not yet valid certificate", required=False)


class UploadSignedForm(forms.Form):
    signed_cert = UploadField(
        label="Upload Signed Certificate",
        help_text="PEM, DER or PKCS#7 (.p7b); a bundle with intermediates is split.",
    )
    accept_dates = forms.BooleanField(label="Accept an expired or not yet valid certificate", required=False)


class IntermediatesForm(forms.Form):
    interm_cert = UploadField(
        label="Intermediate Certificates", help_text="One file, PEM (one or several), DER or .p7b."
    )


class RenewForm(forms.Form):
    new_key = forms.BooleanField(label="Generate a new private key", required=False)


class ExportForm(forms.Form):
    what = forms.ChoiceField(
        label="Export",
        choices=[
            ("pkcs12", "PKCS#12 with the private key"),
            ("certificate", "Certificate (PEM, no key)"),
            ("chain", "Certificate and intermediates (PEM, no key)"),
        ],
        widget=forms.RadioSelect,
        initial="pkcs12",
    )
    file_name = forms.RegexField(
        label="File name",
        regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        error_messages={"invalid": "Use letters, digits and . _ - only."},
    )
    profile = forms.ChoiceField(
        label="PKCS#12 profile", choices=Pkcs12Profile.choices, initial=Pkcs12Profile.MODERN, required=False
    )
    password = forms.CharField(label="File password", widget=forms.PasswordInput, required=False, strip=False)
    password_again = forms.CharField(
        label="Retype file password", widget=forms.PasswordInput, required=False, strip=False
    )
    your_password = forms.CharField(
        label="Your login password",
        widget=forms.PasswordInput,
        required=False,
        strip=False,
        help_text="Exporting a private key asks for your password again.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("what") != "pkcs12":
            return cleaned
        password = cleaned.get("password") or ""
        if password != cleaned.get("password_again"):
            self.add_error("password_again", "The two file passwords differ.")
        if not self.user.check_password(cleaned.get("your_password") or ""):
            self.add_error("your_password", "That is not your login password.")
        return cleaned


class AuthoritySettingsForm(forms.Form):
    system_list_enabled = forms.BooleanField(
        label="System List (Mozilla's trusted roots) enabled", required=False
    )
    custom_list_enabled = forms.BooleanField(label="Custom List enabled", required=False)


class CustomAuthorityForm(forms.Form):
    custom_ca_file = UploadField(label="Add CA certificates", help_text="PEM (one or several), DER or .p7b.")

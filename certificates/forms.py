"""Forms of Network > Certificates; field names follow the ESA's (common_name, org_unit, expiration…)."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

from appliance.forms import CheckedForm, config_validator
from appliance.validators import validate_object_name
from certificates import pki
from certificates.pki import KeyType, Pkcs12Profile, Subject, validate_alternative_name, validate_country
from certificates.store import MAX_DAYS

MAX_UPLOAD_BYTES = 1024 * 1024  # certificates and PKCS#12 files are a few KiB

# Add Certificate's Key Type and Key Size: each type, its label and its sizes, each size pki's KeyType.
KEY_TYPES = {"rsa": "RSA", "ecdsa": "ECDSA"}
KEY_SIZES = {
    "rsa": {"2048": KeyType.RSA2048, "3072": KeyType.RSA3072, "4096": KeyType.RSA4096},
    "ecdsa": {"P-256": KeyType.EC256, "P-384": KeyType.EC384},
}
SIZE_UNIT = {"rsa": " bits", "ecdsa": ""}


def _sizes_in_words(key_type: str) -> str:
    """The sizes of a key type in words: "2048, 3072 or 4096 bits", "P-256 or P-384"."""
    *first, last = KEY_SIZES[key_type]
    return f"{', '.join(first)} or {last}{SIZE_UNIT[key_type]}"


class UploadField(forms.FileField):
    """A certificate-sized file: refused before it is read when it is larger than any certificate,
    and, with ``reader`` (e.g. ``pki.read_certificate_file``), when it is not what the field takes."""

    def __init__(self, *args, reader=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.reader = reader

    def clean(self, data, initial=None):
        upload = super().clean(data, initial)
        if upload and upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"The file is {upload.size // 1024} KiB: larger than any certificate file "
                f"({MAX_UPLOAD_BYTES // 1024} KiB at most)."
            )
        if upload and self.reader:
            try:
                self.reader(uploaded_bytes(upload))
            except pki.CertificateError as refusal:
                raise ValidationError(f"{refusal}.") from None
            finally:
                upload.seek(0)
        return upload


def uploaded_bytes(upload) -> bytes:
    return b"".join(upload.chunks())


class SelfSignedForm(CheckedForm):
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
    key_type = forms.ChoiceField(
        label="Key Type",
        choices=list(KEY_TYPES.items()),
        initial="rsa",
        help_text="RSA works with every mail server. ECDSA keys are smaller and faster; a few old servers "
        "cannot use them.",
    )
    key_size = forms.ChoiceField(
        label="Key Size",
        choices=[(size, size) for sizes in KEY_SIZES.values() for size in sizes],
        initial="2048",
        help_text="RSA: the key's length (2048 bits is usual; 4096 takes a few seconds to make). "
        "ECDSA: the curve.",
    )

    governs = {"key_type": ("key_size",)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The sizes offered are the chosen type's; the field accepts any, and clean() says what fits.
        key_type = self.value_now("key_type")
        offered = KEY_SIZES.get(key_type, KEY_SIZES["rsa"])
        self.fields["key_size"].widget.choices = [(size, size) for size in offered]

    def clean(self):
        cleaned = super().clean()
        key_type, size = cleaned.get("key_type"), cleaned.get("key_size")
        if key_type and size and size not in KEY_SIZES[key_type]:
            self.add_error(
                "key_size", f"An {KEY_TYPES[key_type]} key is {_sizes_in_words(key_type)}, not {size}."
            )
        return cleaned

    def private_key_type(self) -> KeyType:
        """The key to make, as pki names it (rsa2048 … ec384)."""
        return KEY_SIZES[self.cleaned_data["key_type"]][self.cleaned_data["key_size"]]

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


class ImportForm(CheckedForm):
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

    pkcs12: pki.Pkcs12Content | None = None  # the file opened by clean(), once, for the submit

    def clean(self):
        data = super().clean()
        upload = data.get("cert_file")
        if upload:
            # The file's own faults next to it, a wrong password next to the password.
            try:
                self.pkcs12 = pki.read_pkcs12(uploaded_bytes(upload), data.get("cert_pass", ""))
            except pki.WrongPassword as refusal:
                self.add_error("cert_pass", f"{refusal}.")
            except pki.CertificateError as refusal:
                self.add_error("cert_file", f"{refusal}.")
            finally:
                upload.seek(0)
        return data


PASTE_CERTIFICATE = "paste the text from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----"


def _pasted_certificates(text: str, what: str) -> str:
    """The pasted text, if it holds certificates (as ``store.paste`` reads them); else why not."""
    try:
        pki.read_certificate_file(text.encode())
    except pki.CertificateError as exc:
        if "-----BEGIN" not in text:
            raise ValidationError(f"{what}: {PASTE_CERTIFICATE}.") from None
        raise ValidationError(f"{exc}.") from None
    return text


class PasteForm(CheckedForm):
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

    def clean_certificate(self):
        return _pasted_certificates(self.cleaned_data["certificate"], "This is not a PEM certificate")

    def clean_private_key(self):
        text = self.cleaned_data["private_key"]
        if "PRIVATE KEY-----" not in text:
            raise ValidationError(
                "This is not a PEM private key: paste the text from -----BEGIN PRIVATE KEY----- "
                "(or RSA/EC PRIVATE KEY) to its -----END line."
            )
        return text

    def clean_intermediates(self):
        text = self.cleaned_data["intermediates"]
        return _pasted_certificates(text, "These are not PEM certificates") if text.strip() else text


class UploadSignedForm(forms.Form):
    signed_cert = UploadField(
        reader=pki.read_certificate_file,
        label="Upload Signed Certificate",
        help_text="PEM, DER or PKCS#7 (.p7b); a bundle with intermediates is split.",
    )
    accept_dates = forms.BooleanField(label="Accept an expired or not yet valid certificate", required=False)


class IntermediatesForm(forms.Form):
    interm_cert = UploadField(
        reader=pki.read_certificate_file,
        label="Intermediate Certificates",
        help_text="One file, PEM (one or several), DER or .p7b.",
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
    custom_ca_file = UploadField(
        reader=pki.read_certificate_file,
        label="Add CA certificates",
        help_text="PEM (one or several), DER or .p7b.",
    )

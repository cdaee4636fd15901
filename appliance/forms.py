"""Forms of the appliance's own pages; their validators are the configuration file's."""

from __future__ import annotations

from functools import cached_property

from django import forms
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.forms.boundfield import BoundField

from appliance import dns, tls
from appliance.models import Role, User
from appliance.sections import interface_problems
from appliance.validators import validate_hostname, validate_ip_address, validate_object_name

# An inline check posts the whole form, ``_validate=<field name>``, and for each field another one
# governs, ``_drawn_for_<field>``: the value of its governor it was drawn for (``_field.html``).
CHECK_FIELD = "_validate"
DRAWN_FOR = "_drawn_for_"


def uploaded_text(upload) -> str:
    """An uploaded text file's content (a byte-order mark dropped); ValidationError if it is too large
    or not UTF-8 — the import forms' one rule for files."""
    limit = settings.CONFIG_FILE_MAX_BYTES
    if upload.size > limit:
        raise ValidationError(f"The file is larger than the limit of {limit:,} bytes.")
    try:
        return upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("The file is not UTF-8 text.") from None


class TextOrFileForm(forms.Form):
    """An import whose text is typed in ``text`` or given as a file in ``upload`` (the file wins when
    both are given). A subclass declares both fields."""

    missing: str  # the error when neither gives any text, naming what is imported

    def clean_upload(self):
        upload = self.cleaned_data["upload"]
        return None if upload is None else uploaded_text(upload)

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not self.imported_text.strip():
            raise ValidationError(self.missing)
        return cleaned

    @property
    def source(self) -> str:
        """The field the text comes from."""
        return "upload" if self.cleaned_data.get("upload") else "text"

    @property
    def imported_text(self) -> str:
        return self.cleaned_data.get(self.source) or ""


def config_validator(check):
    """Run a configuration validator (ValueError) as a form validator."""

    def validator(value):
        try:
            check(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    return validator


class CheckedBoundField(BoundField):
    """A field of a ``CheckedForm``: what its choices mean, and whether it applies to the choices made."""

    @property
    def inapplicable(self) -> str:
        """Why the field does not apply to the choices made now ("" when it does)."""
        return self.form.inapplicable.get(self.name, "")

    def _meanings(self) -> dict[str, str]:
        return self.form.meanings.get(self.name, {})

    @property
    def _is_radio(self) -> bool:
        return getattr(self.field.widget, "input_type", "") == "radio"

    @property
    def options(self) -> list[tuple]:
        """A radio group's buttons, each with what it means (empty when the field has no meanings)."""
        if not self._meanings() or not self._is_radio:
            return []
        return [(radio, self._meanings().get(str(radio.data["value"]), "")) for radio in self.subwidgets]

    @property
    def meaning(self) -> str:
        """What the choice made in a select means ("" for radio groups: each button says it)."""
        if self._is_radio:
            return ""
        return self._meanings().get(str(self.value()), "")

    @property
    def chosen_label(self) -> str:
        return str(dict(self.field.choices).get(self.value(), self.value()))

    @property
    def governed_by(self) -> str:
        """The field whose choice this one depends on ("" for none)."""
        return next((name for name, governed in self.form.governs.items() if self.name in governed), "")

    @property
    def drawn_for(self) -> str:
        """The governing field's value this field is drawn for."""
        return str(self.form.value_now(self.governed_by))

    @property
    def aria_describedby(self) -> str | None:
        """The help (with the meaning and why the field does not apply) and the error, by id."""
        if self.field.widget.attrs.get("aria-describedby"):
            return None
        ids = []
        if self.auto_id and not self.is_hidden:
            if self.help_text or self.meaning or self.inapplicable:
                ids.append(f"{self.auto_id}_helptext")
            if self.errors:
                ids.append(f"{self.auto_id}_error")
        return " ".join(ids)

    def build_widget_attrs(self, attrs, widget=None):
        attrs = super().build_widget_attrs(attrs, widget)
        if self.inapplicable:
            attrs["disabled"] = True  # the browser does not post it
        return attrs


class CheckedForm(forms.Form):
    """A form the console checks field by field while the administrator fills it in.

    ``_field.html`` gives each field's block the htmx attributes: a change posts the whole form with
    ``_validate=<field>`` to the page, and ``views.common.field_check`` answers with that block drawn
    again, with its error or none, and the blocks of the fields it ``governs`` redrawn for the new
    value (Key Type → Key Size, TLS → Verify Client Certificate) when that value is not the one they
    were drawn for. Nothing is submitted.

    ``meanings``: field → {choice: what it means}, shown beside each radio button, or under a select
    for the choice made. ``inapplicable``: the fields that do not apply to the choices made now, with
    why; they are drawn disabled, so the browser does not post them.
    """

    bound_field_class = CheckedBoundField
    checked_live = True
    governs: dict[str, tuple[str, ...]] = {}
    meanings: dict[str, dict[str, str]] = {}

    def value_now(self, name: str):
        """A field's value as the page shows it: the one posted, else the initial one."""
        field = self.fields[name]
        if self.is_bound:
            return field.widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
        return self.get_initial_for_field(field, name)

    def inapplicable_fields(self) -> dict[str, str]:
        """The fields that do not apply to the choices made now, each with why (override)."""
        return {}

    @cached_property
    def inapplicable(self) -> dict[str, str]:
        return self.inapplicable_fields()


class SystemSettingsForm(forms.Form):
    hostname = forms.CharField(
        label="Hostname",
        max_length=253,
        validators=[config_validator(validate_hostname)],
        help_text="Fully qualified host name of the appliance, shown at the top of every page.",
    )
    rollback_versions_kept = forms.IntegerField(
        label="Configuration versions kept for rollback", min_value=1, max_value=100
    )


class NetworkAccessForm(forms.Form):
    web_ui_timeout_minutes = forms.IntegerField(
        label="Web UI Inactivity Timeout",
        min_value=5,
        max_value=1440,
        help_text="Minutes (5–1440) without a request after which a console session is logged out.",
    )


class UserForm(forms.Form):
    username = forms.RegexField(
        label="User Name",
        regex=r"^[A-Za-z0-9_.@-]{1,150}$",
        error_messages={"invalid": "Use letters, digits and . _ @ - only."},
    )
    full_name = forms.CharField(label="Full Name", max_length=150, required=False)
    role = forms.ChoiceField(label="User Role", choices=Role.choices)
    is_active = forms.BooleanField(label="Account active", required=False, initial=True)
    password = forms.CharField(label="Password", widget=forms.PasswordInput, required=False, strip=False)
    password_again = forms.CharField(
        label="Retype Password", widget=forms.PasswordInput, required=False, strip=False
    )

    def __init__(self, *args, instance: User | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance
        if instance is not None:
            self.fields["username"].disabled = True
            self.fields["password"].help_text = "Leave empty to keep the current password."
            if instance.is_builtin_admin:
                self.fields["role"].disabled = True
                self.fields["is_active"].disabled = True

    def clean_username(self):
        username = self.cleaned_data["username"]
        if self.instance is None and User.objects.filter(username=username).exists():
            raise ValidationError(f"A user named '{username}' already exists.")
        return username

    def clean(self):
        cleaned = super().clean()
        password, again = cleaned.get("password"), cleaned.get("password_again")
        if self.instance is None and not password:
            self.add_error("password", "A new user needs a password.")
        if password:
            if password != again:
                self.add_error("password_again", "The two passwords differ.")
            else:
                probe = self.instance or User(username=cleaned.get("username", ""))
                try:
                    validate_password(password, probe)
                except ValidationError as exc:
                    self.add_error("password", exc)
        return cleaned


# A problem of sections.interface_problems ("netmask", "must be at most 32 for 127.0.0.2"): the form
# field it is shown at, and the words it starts with there.
INTERFACE_FIELD_OF = {"interface_name": "intname", "interface_hostname": "hostname"}
INTERFACE_SUBJECTS = {"netmask": "The netmask", "https_redirect": "Redirect HTTP requests to HTTPS"}


class InterfaceForm(CheckedForm):
    """Network > IP Interfaces > Add/Edit; field names as the ESA's page (intname, ipv4, hostname…).

    The rules between its fields are the configuration file's (``sections.interface_problems``),
    shown next to the field they concern.
    """

    intname = forms.CharField(
        label="Name", max_length=64, validators=[config_validator(validate_object_name)]
    )
    ip = forms.CharField(label="IP Address", validators=[config_validator(validate_ip_address)])
    netmask = forms.IntegerField(label="Netmask (prefix length)", min_value=0, max_value=128, initial=24)
    hostname = forms.CharField(
        label="Hostname", max_length=253, validators=[config_validator(validate_hostname)]
    )
    httpd_port = forms.IntegerField(
        label="HTTP port", min_value=1, max_value=65535, required=False, help_text="Empty: HTTP off."
    )
    https_redirect = forms.BooleanField(label="Redirect HTTP requests to HTTPS", required=False)
    httpsd_port = forms.IntegerField(
        label="HTTPS port", min_value=1, max_value=65535, required=False, help_text="Empty: HTTPS off."
    )
    certificate = forms.ChoiceField(label="HTTPS Certificate", required=False)

    def __init__(self, *args, certificate_choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["certificate"].choices = certificate_choices

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        for tag, message in interface_problems(self.item()):
            name = INTERFACE_FIELD_OF.get(tag, tag)
            subject = INTERFACE_SUBJECTS.get(name, "")
            self.add_error(name, f"{subject} {message}." if subject else f"{message}.")
        return cleaned

    def item(self) -> dict:
        """The interface as the configuration file holds it."""
        data = self.cleaned_data
        return {
            "interface_name": data["intname"],
            "ip": data["ip"],
            "netmask": data["netmask"],
            "interface_hostname": data["hostname"],
            "httpd_port": data["httpd_port"],
            "https_redirect": data["https_redirect"],
            "httpsd_port": data["httpsd_port"],
            "certificate_name": data["certificate"],
        }

    @classmethod
    def initial_from(cls, item: dict) -> dict:
        return {
            "intname": item["interface_name"],
            "ip": item["ip"],
            "netmask": item["netmask"],
            "hostname": item["interface_hostname"],
            "httpd_port": item["httpd_port"],
            "https_redirect": item["https_redirect"],
            "httpsd_port": item["httpsd_port"],
            "certificate": item["certificate_name"],
        }


class SslConfigurationForm(forms.Form):
    """System Administration > SSL Configuration: one block of three fields per service."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for service in tls.Service:
            self.fields[f"{service}_tls_min"] = forms.ChoiceField(
                label=f"{service.label}: lowest TLS version", choices=tls.TLSVersion.choices
            )
            self.fields[f"{service}_tls_max"] = forms.ChoiceField(
                label=f"{service.label}: highest TLS version", choices=tls.TLSVersion.choices
            )
            self.fields[f"{service}_ciphers"] = forms.CharField(
                label=f"{service.label}: ciphers (TLS 1.2 and below)",
                widget=forms.Textarea(attrs={"rows": 2}),
                validators=[config_validator(tls.validate_ciphers)],
                help_text="An OpenSSL cipher string; TLS 1.3 suites are always those of OpenSSL.",
            )

    def clean(self):
        cleaned = super().clean()
        for service in tls.Service:
            lowest, highest = cleaned.get(f"{service}_tls_min"), cleaned.get(f"{service}_tls_max")
            if lowest and highest and (problem := tls.policy_problems(lowest, highest)):
                self.add_error(f"{service}_tls_min", f"{service.label}: {problem}.")
        return cleaned


class DnsForm(forms.Form):
    """Network > DNS: the resolvers, one a line ("address[:port] [priority]"), and the PTR timeout."""

    servers = forms.CharField(
        label="DNS servers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One a line: address, optionally :port, then a priority (0 first). Empty: the machine's resolvers.",
    )
    ptr_timeout = forms.IntegerField(
        label="Wait for reverse DNS (PTR) lookups, seconds", min_value=1, max_value=60
    )

    def clean_servers(self):
        entries = []
        for number, line in enumerate(self.cleaned_data["servers"].splitlines(), 1):
            words = line.split()
            if not words:
                continue
            if len(words) > 2 or (len(words) == 2 and not words[1].isdigit()):
                raise ValidationError(f"Line {number}: write an address, then optionally a priority number.")
            try:
                dns.validate_server(words[0])
            except ValueError as exc:
                raise ValidationError(f"Line {number}: {exc}") from None
            priority = int(words[1]) if len(words) == 2 else 0
            if priority > 99:
                raise ValidationError(f"Line {number}: the priority must be between 0 and 99.")
            entries.append({"address": words[0], "priority": priority})
        if len({e["address"] for e in entries}) != len(entries):
            raise ValidationError("A server is listed twice.")
        return entries


class DnsLookupForm(forms.Form):
    name = forms.CharField(label="Look up", max_length=253, validators=[config_validator(validate_hostname)])
    record_type = forms.ChoiceField(
        label="Record", choices=[(t, t) for t in ("MX", "A", "AAAA", "PTR", "TXT")]
    )

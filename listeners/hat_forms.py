"""Forms of Mail Policies > Mail Flow Policies and HAT Overview, with the ESA's labels.

Each field is checked on its own here; the rules between settings (TLS and its
verification, a policy in use, ALL last, an entry twice in a group) are
``listeners.hat``'s, so the pages and ``listenerconfig`` refuse with the same words.
"""

from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from appliance.forms import config_validator
from appliance.validators import validate_object_name
from listeners import senders
from listeners.models import AddressList, ConnectionBehavior, InboundTls, Listener, SenderGroup

NO_ADDRESS_LIST = "None"

# One line each, from the user guide (docs/config-xml.md, <mail_flow_policies>).
BEHAVIOR_MEANINGS = {
    ConnectionBehavior.ACCEPT: "Take mail for the listener's domains.",
    ConnectionBehavior.RELAY: "Take mail and also relay it to any domain (your own hosts, as RELAYED does).",
    ConnectionBehavior.REJECT: "Answer the connection with 554 and take no mail.",
    ConnectionBehavior.TCPREFUSE: "Close the connection before the SMTP banner.",
    ConnectionBehavior.CONTINUE: (
        "This group does not decide: the HAT goes on to the next sender group that holds the host."
    ),
}
TLS_MEANINGS = {
    InboundTls.OFF: "STARTTLS is not offered: mail arrives in the clear.",
    InboundTls.PREFERRED: "STARTTLS is offered; the sender may use it but need not.",
    InboundTls.REQUIRED: (
        "Until the sender has started TLS, every command except NOOP, EHLO, STARTTLS and QUIT is refused "
        "with 530 5.7.0 Must issue a STARTTLS command first (RFC 3207)."
    ),
}
VERIFY_HELP = (
    "Checks the sender's client certificate against the enabled Certificate Authorities lists. With TLS "
    "Preferred, a sender without a certificate may still connect but one with an invalid certificate is "
    "refused; with TLS Required, a valid certificate is needed. Needs TLS Preferred or Required."
)
ADDRESS_LIST_HELP = (
    "Only with TLS Preferred: envelope senders that match this address list (Mail Policies > Address "
    "Lists) must have started TLS, or their mail is refused; other senders may still send in the clear."
)


def use_default_meaning(listener: Listener) -> str:
    return (
        f"Takes the listener's Default Policy Parameters, now {InboundTls(listener.default_tls).label}: "
        "TLS, Verify Client Certificate and TLS is Mandatory for Address List all come from there."
    )


def _address_list_choices() -> list[tuple[str, str]]:
    return [("", NO_ADDRESS_LIST)] + [
        (name, name) for name in AddressList.objects.values_list("name", flat=True)
    ]


class TlsForm(forms.Form):
    """The TLS settings a policy and the Default Policy Parameters share."""

    tls = forms.ChoiceField(label="TLS", widget=forms.RadioSelect)
    tls_verify_client = forms.BooleanField(
        label="Verify Client Certificate", required=False, help_text=VERIFY_HELP
    )
    tls_mandatory_address_list = forms.ChoiceField(
        label="TLS is Mandatory for Address List",
        required=False,
        help_text=ADDRESS_LIST_HELP,
        error_messages={"invalid_choice": "There is no address list named '%(value)s'"},
    )

    def __init__(self, *args, listener: Listener, **kwargs):
        super().__init__(*args, **kwargs)
        self.listener = listener
        self.fields["tls_mandatory_address_list"].choices = _address_list_choices()

    def tls_choices(self) -> list[tuple[object, str]]:
        """Each TLS radio button with its meaning, for the template."""
        meanings = {**TLS_MEANINGS, InboundTls.DEFAULT: use_default_meaning(self.listener)}
        return [(radio, meanings[radio.data["value"]]) for radio in self["tls"]]


class PolicyForm(TlsForm):
    """Add Policy / Edit Policy (the ESA's ``new_id``, ``behavior``, ``tls``, ``tls_verify``, ``tls_exceptions``)."""

    name = forms.CharField(label="Name", max_length=64, validators=[config_validator(validate_object_name)])
    connection_behavior = forms.ChoiceField(
        label="Connection Behavior",
        choices=ConnectionBehavior.choices,
        initial=ConnectionBehavior.ACCEPT,
        widget=forms.RadioSelect,
    )
    field_order = ["name", "connection_behavior", "tls", "tls_verify_client", "tls_mandatory_address_list"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tls = self.fields["tls"]
        tls.choices = InboundTls.choices
        tls.initial = InboundTls.DEFAULT

    def behavior_choices(self) -> list[tuple[object, str]]:
        return [(radio, BEHAVIOR_MEANINGS[radio.data["value"]]) for radio in self["connection_behavior"]]

    @staticmethod
    def initial_for(policy) -> dict:
        return {
            "name": policy.name,
            "connection_behavior": policy.connection_behavior,
            "tls": policy.tls,
            "tls_verify_client": policy.tls_verify_client,
            "tls_mandatory_address_list": policy.tls_mandatory_address_list,
        }


class DefaultParametersForm(TlsForm):
    """Default Policy Parameters: what a policy's TLS "Use Default" stands for (no Use Default here)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tls"].choices = [
            (value, label) for value, label in InboundTls.choices if value != "default"
        ]

    @staticmethod
    def initial_for(listener: Listener) -> dict:
        return {
            "tls": listener.default_tls,
            "tls_verify_client": listener.default_tls_verify_client,
            "tls_mandatory_address_list": listener.default_tls_mandatory_address_list,
        }


class SenderGroupForm(forms.Form):
    """Add Sender Group / Edit Sender Group: Name, Order, Comment, Policy. ALL keeps its name and place."""

    name = forms.CharField(label="Name", max_length=64, validators=[config_validator(validate_object_name)])
    order = forms.IntegerField(
        label="Order",
        required=False,
        widget=forms.NumberInput(attrs={"min": 1}),
        help_text="Where the group stands in the HAT: 1 is read first. Empty: last, before ALL.",
    )
    comment = forms.CharField(label="Comment", max_length=255, required=False)
    policy = forms.ChoiceField(
        label="Policy",
        help_text="The mail flow policy of the hosts this group holds.",
        error_messages={"invalid_choice": "This listener has no mail flow policy named '%(value)s'"},
    )

    def __init__(
        self, *args, listener: Listener, group: SenderGroup | None = None, group_count: int, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.fields["policy"].choices = [
            (name, name) for name in listener.policies.values_list("name", flat=True)
        ]
        ordered = (
            group_count if group is not None else group_count + 1
        )  # groups besides ALL, this one counted
        self.fields["order"].widget.attrs["max"] = ordered  # the rule and its words are hat._place's
        if group is not None:
            self.fields[
                "order"
            ].help_text = f"Where the group stands in the HAT: 1 to {ordered}, 1 is read first."
        if group is not None and group.name == senders.ALL:
            for name in ("name", "order"):
                self.fields[name].disabled = True
                self.fields[name].required = False
            self.fields["order"].help_text = "ALL is always last: it holds every host no other group holds."


def split_senders(text: str) -> list[str]:
    """The senders typed: one a line, or separated by commas (or both)."""
    return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]


class AddSendersForm(forms.Form):
    senders = forms.CharField(
        label="Sender",
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text=f"One a line, or separated by commas: {senders.FORMS}.",
        error_messages={"required": f"Give at least one sender ({senders.FORMS})"},
    )


class FindSendersForm(forms.Form):
    address = forms.CharField(
        label="IP address",
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "192.0.2.10 or 2001:db8::10"}),
    )
    hostname = forms.CharField(
        label="Host name (optional)",
        max_length=253,
        required=False,
        help_text="The connecting host's verified reverse DNS name, for entries like mail.example.com.",
    )


class ImportHatForm(forms.Form):
    """Import HAT: the text typed, or a file (the file wins when both are given)."""

    text = forms.CharField(
        label="HAT text", required=False, strip=False, widget=forms.Textarea(attrs={"rows": 14})
    )
    upload = forms.FileField(
        label="Or a HAT file",
        required=False,
        help_text="Export HAT writes this format. The import replaces all of the listener's sender groups.",
    )

    def clean_upload(self):
        upload = self.cleaned_data["upload"]
        if upload is None:
            return None
        limit = settings.CONFIG_FILE_MAX_BYTES
        if upload.size > limit:
            raise ValidationError(f"The file is larger than the limit of {limit:,} bytes.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text.") from None

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not cleaned.get("upload") and not cleaned.get("text", "").strip():
            raise ValidationError("Give the HAT as text or as a file.")
        return cleaned

    @property
    def hat_text(self) -> str:
        return self.cleaned_data["upload"] or self.cleaned_data["text"]

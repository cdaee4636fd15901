"""Forms of Mail Policies > Mail Flow Policies and HAT Overview, with the ESA's labels.

Each field is checked on its own here; the rules between settings (TLS and its
verification, a policy in use, ALL last, an entry twice in a group) are
``listeners.hat``'s, so the pages and ``listenerconfig`` refuse with the same words.
"""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

from appliance.forms import CheckedForm, TextOrFileForm, config_validator
from appliance.validators import validate_object_name
from listeners import senders
from listeners.models import (
    LIMIT_LABELS,
    LIMITS,
    POLICY_LIMITS,
    AddressList,
    ConnectionBehavior,
    InboundTls,
    Listener,
    SenderGroup,
    limit_problem,
)

NO_ADDRESS_LIST = "None"
USE_DEFAULT, OWN_VALUE = "default", "value"  # a policy's limit: the Default Policy Parameters', or its own

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
# Each TLS choice of a policy, in the user guide's words (ESA-REFERENCE §3.1, the listener TLS table),
# with what the gateway answers.
TLS_MEANINGS = {
    InboundTls.OFF: (
        "TLS is not allowed for incoming connections: STARTTLS is not offered, and mail arrives in the clear."
    ),
    InboundTls.PREFERRED: (
        "TLS is allowed for incoming connections to the listener from MTAs: STARTTLS is offered; the "
        "sender may use it but need not."
    ),
    InboundTls.REQUIRED: (
        "TLS is allowed for incoming connections to the listener from MTAs, and until the STARTTLS "
        "command is received, the appliance responds with an error message to every command other than "
        "NOOP, EHLO, or QUIT: 530 5.7.0 Must issue a STARTTLS command first (RFC 3207)."
    ),
}
VERIFY_HELP = (
    "The appliance establishes the TLS connection only if the sender's client certificate is valid, "
    "checked against the enabled Certificate Authorities lists. With TLS Preferred, a sender without a "
    "certificate may still connect, but one with an invalid certificate is refused; with TLS Required, "
    "the sender needs a valid certificate to connect."
)
ADDRESS_LIST_HELP = (
    "Only with TLS Preferred: envelope senders that match this address list (Mail Policies > Address "
    "Lists) must have started TLS, or their mail is refused; other senders may still send in the clear."
)
# Why Verify Client Certificate and TLS is Mandatory for Address List do not apply (hat.tls_problems).
NEEDS_TLS = "Needs TLS Preferred or Required."
NEEDS_PREFERRED = "Applies only with TLS Preferred."


# --- limits: the listener's and the mail flow policies' -----------------------------------------

# What each limit means to a sending MTA: the answer it gets past the limit (gateway/smtpd.py).
LIMIT_HELP = {
    "max_concurrency": (
        "Connections the listener serves at once; one more is answered "
        "421 4.3.2 Too many concurrent connections; try again later, and closed."
    ),
    "max_tls_concurrency": (
        "Sessions in TLS at once; a STARTTLS beyond it is answered "
        "454 4.7.0 TLS not available due to temporary reason."
    ),
    "max_message_size": (
        "In bytes (10485760 is 10 MB). Advertised in the EHLO answer as SIZE; a bigger message is "
        "refused with 552."
    ),
    "max_rcpts_per_msg": (
        "Recipients in one message; one more is answered 452 4.5.3 Too many recipients "
        "(the sender sends the rest in another message)."
    ),
    "max_msgs_per_session": (
        "Messages in one connection; the next MAIL FROM is answered "
        "421 4.7.0 Too many messages in this session, and the connection is closed."
    ),
    "max_concurrency_per_ip": (
        "Connections one client address holds at once; one more is answered 421 4.7.0 Too many "
        "concurrent SMTP connections from this IP address, and closed."
    ),
    "max_connections_per_minute_per_ip": (
        "Connections one client address opens in a minute, refused ones included; one more is "
        "answered 421 4.7.0 Too many SMTP connections from this IP address this minute, and closed."
    ),
}
MEGABYTE, KILOBYTE = 1024 * 1024, 1024


def shown_size(size: int) -> str:
    """A message size in the units an administrator reads: 10485760 → "10 MB", 51200 → "50 KB"."""
    for unit, name in ((MEGABYTE, "MB"), (KILOBYTE, "KB")):
        if size >= unit:
            return f"{round(size / unit, 1):g} {name}"
    return f"{size:,} bytes"


def shown_limit(tag: str, value: int) -> str:
    """A limit's value as the pages show it (sizes in MB or KB, other limits as numbers)."""
    return shown_size(value) if tag == "max_message_size" else f"{value:,}"


def default_in_words(tag: str, value: int) -> str:
    """What "Use Default" stands for now: "10485760 bytes, 10 MB", "50"."""
    return f"{value} bytes, {shown_size(value)}" if tag == "max_message_size" else str(value)


def _limit_validator(tag: str):
    def validator(value: int) -> None:
        problem = limit_problem(tag, value)
        if problem:
            raise ValidationError(problem)

    return validator


def _number_input(tag: str) -> forms.NumberInput:
    low, high = LIMITS[tag]
    return forms.NumberInput(attrs={"min": low, "max": high, "class": "number"})


def limit_field(tag: str, **kwargs) -> forms.IntegerField:
    """A required limit (a listener's, or one of the Default Policy Parameters): a whole number in range."""
    low, high = LIMITS[tag]
    return forms.IntegerField(
        label=LIMIT_LABELS[tag],
        validators=[_limit_validator(tag)],
        widget=_number_input(tag),
        help_text=f"{LIMIT_HELP[tag]} From {low:,} to {high:,}.",
        **kwargs,
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


class TlsForm(CheckedForm):
    """The TLS settings a policy and the Default Policy Parameters share: the TLS choices explained, and
    Verify Client Certificate and the address list drawn disabled (not posted) where the TLS chosen
    leaves them no meaning; choosing TLS redraws them."""

    tls = forms.ChoiceField(
        label="TLS",
        widget=forms.RadioSelect,
        help_text="Deny, prefer or require TLS in the SMTP conversations of the hosts this policy "
        "applies to.",
    )
    tls_verify_client = forms.BooleanField(
        label="Verify Client Certificate", required=False, help_text=VERIFY_HELP
    )
    tls_mandatory_address_list = forms.ChoiceField(
        label="TLS is Mandatory for Address List",
        required=False,
        help_text=ADDRESS_LIST_HELP,
        error_messages={"invalid_choice": "There is no address list named '%(value)s'"},
    )

    governs = {"tls": ("tls_verify_client", "tls_mandatory_address_list")}

    def __init__(self, *args, listener: Listener, **kwargs):
        super().__init__(*args, **kwargs)
        self.listener = listener
        self.fields["tls_mandatory_address_list"].choices = _address_list_choices()
        self.meanings = {"tls": {**TLS_MEANINGS, InboundTls.DEFAULT: use_default_meaning(listener)}}

    def inapplicable_fields(self) -> dict[str, str]:
        tls = self.value_now("tls")
        if tls == InboundTls.DEFAULT:
            now = InboundTls(self.listener.default_tls).label
            why = f"With TLS Use Default, this comes from the Default Policy Parameters (TLS {now})."
            return {"tls_verify_client": why, "tls_mandatory_address_list": why}
        if tls == InboundTls.OFF:
            return {"tls_verify_client": NEEDS_TLS, "tls_mandatory_address_list": NEEDS_PREFERRED}
        if tls == InboundTls.REQUIRED:
            return {"tls_mandatory_address_list": NEEDS_PREFERRED}
        return {}


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
        self.meanings["connection_behavior"] = BEHAVIOR_MEANINGS
        # Each limit: "Use Default" (the Default Policy Parameters') or a number of the policy's own.
        for tag in POLICY_LIMITS:
            default = getattr(self.listener, f"default_{tag}")
            self.fields[f"{tag}_mode"] = forms.ChoiceField(
                label=LIMIT_LABELS[tag],
                choices=[
                    (USE_DEFAULT, f"Use Default ({default_in_words(tag, default)})"),
                    (OWN_VALUE, "Own value"),
                ],
                initial=USE_DEFAULT,
                required=False,
                widget=forms.RadioSelect,
            )
            number = _number_input(tag)
            # Typing a number chooses it (the radio button beside it).
            number.attrs["oninput"] = f"document.getElementById('id_{tag}_mode_1').checked = true"
            number.attrs["aria-label"] = LIMIT_LABELS[tag]
            self.fields[tag] = forms.CharField(
                label=LIMIT_LABELS[tag], required=False, widget=number, help_text=LIMIT_HELP[tag]
            )

    def clean(self):
        """Each limit: None for Use Default, else the number given (a form posted without the choice:
        the number if there is one, else Use Default)."""
        cleaned = super().clean()
        for tag in POLICY_LIMITS:
            text = (cleaned.get(tag) or "").strip()
            mode = cleaned.get(f"{tag}_mode") or (OWN_VALUE if text else USE_DEFAULT)
            cleaned[tag] = None
            if mode == USE_DEFAULT:
                continue
            if not text:
                self.add_error(tag, f"Give {LIMIT_LABELS[tag]} as a number, or choose Use Default")
            elif not (text.isascii() and text.isdigit()):
                self.add_error(tag, f"{LIMIT_LABELS[tag]} must be a whole number, not {text!r}")
            elif problem := limit_problem(tag, int(text)):
                self.add_error(tag, problem)
            else:
                cleaned[tag] = int(text)
        return cleaned

    def limit_rows(self) -> list[tuple]:
        """Each limit for the template: (choice field, its Use Default radio, its own-value radio, number)."""
        rows = []
        for tag in POLICY_LIMITS:
            mode = self[f"{tag}_mode"]
            use_default, own = list(mode)
            rows.append((mode, use_default, own, self[tag]))
        return rows

    @staticmethod
    def initial_for(policy) -> dict:
        initial = {
            "name": policy.name,
            "connection_behavior": policy.connection_behavior,
            "tls": policy.tls,
            "tls_verify_client": policy.tls_verify_client,
            "tls_mandatory_address_list": policy.tls_mandatory_address_list,
        }
        for tag in POLICY_LIMITS:
            value = getattr(policy, tag)
            initial[f"{tag}_mode"] = USE_DEFAULT if value is None else OWN_VALUE
            initial[tag] = "" if value is None else str(value)
        return initial


class DefaultParametersForm(TlsForm):
    """Default Policy Parameters: what a policy's "Use Default" stands for (no Use Default here): TLS,
    and the limits, each a number."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tls = self.fields["tls"]
        tls.choices = [(value, label) for value, label in InboundTls.choices if value != "default"]
        tls.help_text = (
            "Deny, prefer or require TLS in the SMTP conversations of every policy whose TLS is Use Default."
        )
        for tag in POLICY_LIMITS:
            self.fields[tag] = limit_field(tag)

    def limit_fields(self) -> list:
        return [self[tag] for tag in POLICY_LIMITS]

    @staticmethod
    def initial_for(listener: Listener) -> dict:
        return {
            "tls": listener.default_tls,
            "tls_verify_client": listener.default_tls_verify_client,
            "tls_mandatory_address_list": listener.default_tls_mandatory_address_list,
            **{tag: getattr(listener, f"default_{tag}") for tag in POLICY_LIMITS},
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


class ImportHatForm(TextOrFileForm):
    """Import HAT: the text typed, or a file (the file wins when both are given)."""

    missing = "Give the HAT as text or as a file."
    text = forms.CharField(
        label="HAT text", required=False, strip=False, widget=forms.Textarea(attrs={"rows": 14})
    )
    upload = forms.FileField(
        label="Or a HAT file",
        required=False,
        help_text="Export HAT writes this format. The import replaces all of the listener's sender groups.",
    )

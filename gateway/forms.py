"""Forms of the gateway's pages."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from gateway import tlsprobe


class TlsTestForm(forms.Form):
    """Destination Controls > Test TLS: the domain whose name is compared, and a server instead of its MX hosts."""

    domain = forms.CharField(
        label="Domain",
        max_length=255,
        widget=forms.TextInput(attrs={"placeholder": "example.com"}),
        help_text="Its mail servers (MX hosts, or its SMTP route) are tested and its name is compared.",
    )
    host = forms.CharField(
        label="Host[:port]",
        max_length=300,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "mx.example.com:25"}),
        help_text="Optional: test this server instead of the domain's (port 25 if none is given).",
    )
    listener = forms.ChoiceField(
        label="Check my own listener",
        required=False,
        help_text="Optional: test this appliance's listener as an outside MTA sees it; its certificate "
        "should cover the interface's host name and the domain's MX hosts.",
    )

    def __init__(self, *args, listeners: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["listener"].choices = [
            ("", "(no: test the domain's servers)"),
            *((n, n) for n in listeners),
        ]

    def clean(self):
        data = super().clean()
        host = data.get("host")
        if data.get("listener") and host and host[0]:
            self.add_error(
                "listener", "Test either a server (Host[:port]) or one of your listeners, not both."
            )
        return data

    def clean_domain(self) -> str:
        try:
            return tlsprobe.target_domain(self.cleaned_data["domain"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def clean_host(self) -> tuple[str, int | None]:
        try:
            return tlsprobe.target_host(self.cleaned_data["host"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

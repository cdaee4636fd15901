"""System Administration > Alerts: the recipients, Add Recipient, Edit Recipient and Delete."""

from __future__ import annotations

from django import forms
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from appliance import alerts
from appliance.alerts import ALL, AlertClass, AlertRecipient, Severity
from appliance.forms import config_validator
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, staged_form_page, submit_change


class AlertRecipientForm(forms.Form):
    address = forms.CharField(
        label="Recipient Address",
        max_length=254,
        validators=[config_validator(alerts.validate_address)],
    )
    alert_classes = forms.MultipleChoiceField(
        label="Alert Classes",
        choices=[(ALL, "All"), *AlertClass.choices],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one alert class"},
    )
    severities = forms.MultipleChoiceField(
        label="Severities",
        choices=[(ALL, "All"), *Severity.choices],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one severity"},
        help_text="The recipient receives every chosen class at every chosen severity.",
    )

    @classmethod
    def initial_for(cls, recipient: AlertRecipient) -> dict:
        return {
            "address": recipient.address,
            "alert_classes": recipient.alert_classes,
            "severities": recipient.severities,
        }


def _recipient(address: str) -> AlertRecipient:
    recipient = AlertRecipient.objects.filter(address=address).first()
    if recipient is None:
        raise Http404(f"There is no alert recipient {address}.")
    return recipient


def _list_context() -> dict:
    return {"recipients": AlertRecipient.objects.all()}


@requires(Capability.VIEW_CONFIG)
def alert_list(request: ConsoleRequest):
    return render(request, "appliance/alert_recipients.html", _list_context())


@requires(Capability.VIEW_CONFIG)
def add_recipient(request: ConsoleRequest):
    return _form_page(request, None)


@requires(Capability.VIEW_CONFIG)
def edit_recipient(request: ConsoleRequest, address: str):
    return _form_page(request, _recipient(address))


def _form_page(request: ConsoleRequest, recipient: AlertRecipient | None):
    form = AlertRecipientForm(
        request.POST or None, initial=AlertRecipientForm.initial_for(recipient) if recipient else None
    )

    def change(data):
        if recipient is None:
            return f"added alert recipient {data['address']}", lambda: alerts.create(
                data["address"], data["alert_classes"], data["severities"]
            )
        return f"edited alert recipient {recipient.address}", lambda: alerts.edit(
            recipient.address,
            new_address=data["address"],
            alert_classes=data["alert_classes"],
            severities=data["severities"],
        )

    return staged_form_page(
        request,
        form,
        change,
        full_template="appliance/alert_recipients_form.html",
        partial_template="appliance/alert_recipients_form_fields.html",
        context={"recipient": recipient},
        success_url=reverse("alert_recipients"),
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def delete_recipient(request: ConsoleRequest, address: str):
    _recipient(address)
    return submit_change(
        request,
        f"deleted alert recipient {address}",
        lambda: alerts.delete(address),
        success_url=reverse("alert_recipients"),
        template="appliance/alert_recipients.html",
        context=_list_context(),
    )

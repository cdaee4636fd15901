"""The Add/Edit Listener form, with the ESA's labels.

The form checks each field on its own; the rules between listeners and
interfaces (a name taken, a port in use) are the store's, so the page and
``listenerconfig`` refuse the same things with the same words.
"""

from __future__ import annotations

from django import forms

from appliance.config import levels
from appliance.forms import CheckedForm, config_validator
from appliance.validators import validate_object_name
from certificates.selectors import certificate_choices
from listeners import store
from listeners.hat_forms import limit_field
from listeners.models import DEFAULT_LIMITS, PORT_MAX, PORT_MIN, Listener

NO_CERTIFICATE = "— none —"
PORT_RANGE = f"The port must be between {PORT_MIN} and {PORT_MAX}"


class ListenerForm(CheckedForm):
    name = forms.CharField(label="Name", max_length=64, validators=[config_validator(validate_object_name)])
    listener_type = forms.ChoiceField(
        label="Type of Listener",
        choices=Listener.Type.choices,
        initial=Listener.Type.PUBLIC,
        widget=forms.RadioSelect,
        help_text="Public: accepts mail from the internet. Private: relays mail from your own hosts.",
    )
    interface_name = forms.ChoiceField(
        label="Interface", error_messages={"invalid_choice": "There is no interface named '%(value)s'"}
    )
    port = forms.IntegerField(
        label="Port",
        initial=25,
        min_value=PORT_MIN,
        max_value=PORT_MAX,
        error_messages={"min_value": PORT_RANGE, "max_value": PORT_RANGE},
    )
    certificate_name = forms.ChoiceField(
        label="Certificate",
        required=False,
        error_messages={"invalid_choice": "There is no certificate named '%(value)s'"},
        help_text="Offered to clients that ask for TLS (STARTTLS). None: the listener offers no TLS.",
    )
    max_concurrency = limit_field("max_concurrency", initial=DEFAULT_LIMITS["max_concurrency"])
    max_tls_concurrency = limit_field("max_tls_concurrency", initial=DEFAULT_LIMITS["max_tls_concurrency"])

    def __init__(self, *args, mode: levels.Mode, **kwargs):
        """``mode``: the administrator's, whose machine's interfaces and certificates are offered."""
        super().__init__(*args, **kwargs)
        self.fields["interface_name"].choices = store.interface_choices(mode)
        self.fields["certificate_name"].choices = certificate_choices(
            mode.seen("certificates"), blank=NO_CERTIFICATE
        )

    @classmethod
    def initial_for(cls, listener: Listener) -> dict:
        return {
            "name": listener.name,
            "listener_type": listener.listener_type,
            "interface_name": listener.interface_name,
            "port": listener.port,
            "certificate_name": listener.certificate_name,
            **{tag: getattr(listener, tag) for tag in store.LISTENER_LIMITS},
        }

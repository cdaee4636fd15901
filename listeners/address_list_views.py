"""Mail Policies > Address Lists: the lists, Add Address List, Edit Address List and Delete."""

from __future__ import annotations

from django import forms
from django.http import Http404
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from appliance.forms import config_validator
from appliance.roles import Capability, requires
from appliance.validators import validate_object_name
from appliance.views.common import ConsoleRequest, staged_form_page, submit_change
from listeners import address_lists
from listeners.address_lists import FORMS, AddressList


class AddressListForm(forms.Form):
    name = forms.CharField(label="Name", max_length=64, validators=[config_validator(validate_object_name)])
    description = forms.CharField(label="Description", max_length=255, required=False)
    entries = forms.CharField(
        label="Addresses",
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text=f"One per line: {FORMS}.",
        error_messages={"required": "An address list needs at least one entry"},
    )

    @classmethod
    def initial_for(cls, address_list: AddressList) -> dict:
        return {
            "name": address_list.name,
            "description": address_list.description,
            "entries": "\n".join(address_list.entries),
        }


def _address_list(name: str) -> AddressList:
    address_list = AddressList.objects.filter(name=name).first()
    if address_list is None:
        raise Http404(f"There is no address list named '{name}'.")
    return address_list


def _list_context() -> dict:
    return {"address_lists": AddressList.objects.all()}


@requires(Capability.VIEW_CONFIG)
def address_list_list(request: ConsoleRequest):
    return render(request, "listeners/address_lists.html", _list_context())


@requires(Capability.VIEW_CONFIG)
def add_address_list(request: ConsoleRequest):
    return _form_page(request, None)


@requires(Capability.VIEW_CONFIG)
def edit_address_list(request: ConsoleRequest, name: str):
    return _form_page(request, _address_list(name))


def _form_page(request: ConsoleRequest, address_list: AddressList | None):
    form = AddressListForm(
        request.POST or None, initial=AddressListForm.initial_for(address_list) if address_list else None
    )

    def change(data):
        entries = data["entries"].splitlines()
        if address_list is None:
            return f"created address list {data['name']}", lambda: address_lists.create(
                data["name"], entries, data["description"]
            )
        return f"edited address list {address_list.name}", lambda: address_lists.edit(
            address_list.name, new_name=data["name"], description=data["description"], entries=entries
        )

    return staged_form_page(
        request,
        form,
        change,
        full_template="listeners/address_list_form.html",
        partial_template="listeners/address_list_form_fields.html",
        context={"address_list": address_list},
        success_url=reverse("listeners:address_lists"),
    )


@requires(Capability.VIEW_CONFIG)
@require_POST
def delete_address_list(request: ConsoleRequest, name: str):
    _address_list(name)
    return submit_change(
        request,
        f"deleted address list {name}",
        lambda: address_lists.delete(name),
        success_url=reverse("listeners:address_lists"),
        template="listeners/address_lists.html",
        context=_list_context(),
    )


# Included under the listeners namespace; a name goes after a fixed word.
urlpatterns = [
    path("", address_list_list, name="address_lists"),
    path("add/", add_address_list, name="address_list_add"),
    path("edit/<str:name>/", edit_address_list, name="address_list_edit"),
    path("delete/<str:name>/", delete_address_list, name="address_list_delete"),
]

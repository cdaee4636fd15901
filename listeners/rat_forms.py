"""Mail Policies > Recipient Access Table: its forms (the operations are ``listeners.rat``'s)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from appliance.config.sections import Item
from appliance.forms import TextOrFileForm, config_validator
from listeners import rat
from listeners.rat import ALL, RatRefused, parse_checked

ACTION_MEANINGS = {
    rat.Action.ACCEPT: "Take mail for these recipients.",
    rat.Action.REJECT: "Refuse them: 550 5.7.1 Recipient address rejected.",
}
TEXT_HELP = (
    "One entry a line: RECIPIENT ACCEPT or RECIPIENT REJECT, read from the top; the first entry that "
    f"covers a recipient decides. A recipient is {rat.FORMS}. The last line is ALL ACCEPT or ALL REJECT. "
    "Text after # is a comment."
)


def _entries_or_errors(text: str) -> list[Item]:
    try:
        return parse_checked(text)
    except RatRefused as refusal:
        raise ValidationError(refusal.problems) from None


class EditRatForm(forms.Form):
    """Edit RAT: the whole table as text, checked line by line before it is submitted."""

    text = forms.CharField(
        label="Recipient Access Table",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 16, "class": "mono", "spellcheck": "false"}),
        help_text=TEXT_HELP,
        error_messages={"required": "Give the RAT: at least its last entry, ALL ACCEPT or ALL REJECT"},
    )

    def clean_text(self):
        text = self.cleaned_data["text"]
        entries = _entries_or_errors(text)
        if not entries:
            raise ValidationError("Give the RAT: at least its last entry, ALL ACCEPT or ALL REJECT")
        self.cleaned_data["entries"] = entries
        return text


class ImportRatForm(TextOrFileForm):
    """Import RAT: the text typed, or a file (the file wins when both are given)."""

    missing = "Give the RAT as text or as a file."
    text = forms.CharField(
        label="RAT text",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 14, "class": "mono", "spellcheck": "false"}),
        help_text=TEXT_HELP,
    )
    upload = forms.FileField(
        label="Or a RAT file",
        required=False,
        help_text="Export RAT writes this format. The import replaces every entry of the listener's RAT.",
    )

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                cleaned["entries"] = _entries_or_errors(self.imported_text)
            except ValidationError as error:
                self.add_error(self.source, error)
        return cleaned


class EntryForm(forms.Form):
    """Add Entry / Edit Entry: Order, Recipient, Action. ALL keeps its recipient and its place."""

    order = forms.IntegerField(
        label="Order",
        required=False,
        widget=forms.NumberInput(attrs={"min": 1}),
        help_text="Where the entry stands in the RAT: 1 is read first. Empty: last, before ALL.",
    )
    recipient = forms.CharField(
        label="Recipient",
        max_length=255,
        validators=[config_validator(rat.canonical_recipient)],
        help_text=(
            "example.com (every address there, not its subdomains), .example.com (every address at a "
            "subdomain), user@example.com (that address) or user@ (that user part at any domain)."
        ),
    )
    action = forms.ChoiceField(
        label="Action", choices=rat.Action.choices, initial=rat.Action.ACCEPT, widget=forms.RadioSelect
    )

    def __init__(self, *args, entry_count: int, recipient: str | None = None, **kwargs):
        """``entry_count``: the RAT's entries besides ALL; ``recipient``: the entry edited (None: a new one)."""
        super().__init__(*args, **kwargs)
        order = self.fields["order"]
        top = entry_count if recipient is not None else entry_count + 1
        order.widget.attrs["max"] = top  # the rule and its words are _place's
        if recipient is not None:
            order.help_text = f"Where the entry stands in the RAT: 1 to {top}, 1 is read first."
        if recipient == ALL:
            for name in ("order", "recipient"):
                self.fields[name].disabled = True
                self.fields[name].required = False
            order.widget.attrs.pop("max")
            order.help_text = "ALL is always last: it covers every recipient no entry above covers."
            self.fields["recipient"].help_text = ""

    def clean_recipient(self):
        value = self.cleaned_data["recipient"]
        return rat.canonical_recipient(value) if value else value

    def action_choices(self) -> list[tuple[object, str]]:
        return [(radio, ACTION_MEANINGS[radio.data["value"]]) for radio in self["action"]]


_address = EmailValidator(message="Give an address such as user@example.com")


class RecipientLookupForm(forms.Form):
    address = forms.CharField(
        label="Recipient address",
        max_length=320,
        validators=[_address],
        widget=forms.TextInput(attrs={"placeholder": "user@example.com"}),
    )

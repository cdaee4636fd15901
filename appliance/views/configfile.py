"""System Administration > Configuration File: save the running configuration, load one."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.views.decorators.http import require_POST

from appliance import configfile, workflow
from appliance.config.xmlfile import ConfigFileError, SecretMode, size_limit_text
from appliance.roles import Capability, can, requires
from appliance.views.common import ConsoleRequest, source_of

# What a page shown again after a refused load echoes of the input: a paste may be up to
# CONFIG_FILE_MAX_BYTES, and a document's problems quote its values and may run to one a line.
ECHOED_PASTE_MAX_CHARS = 64 * 1024
PROBLEMS_SHOWN = 50
PROBLEM_MAX_CHARS = 300


class SaveForm(forms.Form):
    operation = forms.ChoiceField(
        label="Current Configuration",
        choices=[
            ("download", "Download file to local computer to view or save"),
            ("save", "Save file to this appliance"),
        ],
        widget=forms.RadioSelect,
        initial="download",
    )
    passphrases = forms.ChoiceField(
        label="Passphrases",
        choices=[
            (SecretMode.MASK, "Mask passphrases (files with masked passphrases cannot be loaded)"),
            (SecretMode.ENCRYPT, "Encrypt passphrases"),
            (SecretMode.PLAIN, "Plain passphrases (Administrator only: private keys in clear text)"),
        ],
        widget=forms.RadioSelect,
        initial=SecretMode.MASK,
    )
    passphrase = forms.CharField(label="Passphrase", widget=forms.PasswordInput, required=False, strip=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        if not can(user, Capability.SAVE_ON_APPLIANCE):
            self.fields["operation"].choices = [
                (operation, label)
                for operation, label in self.fields["operation"].choices
                if operation != "save"
            ]
        self.fields["passphrases"].choices = [
            (mode, label)
            for mode, label in self.fields["passphrases"].choices
            if can(user, configfile.EXPORT_CAPABILITY[SecretMode(mode)])
        ]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("passphrases") == SecretMode.ENCRYPT and not cleaned.get("passphrase"):
            self.add_error("passphrase", "Give the passphrase that will encrypt the private keys.")
        return cleaned


class LoadForm(forms.Form):
    source = forms.ChoiceField(
        label="Load Configuration",
        choices=[
            ("appliance", "Load a configuration file from the appliance"),
            ("upload", "Load a configuration file from local computer"),
            ("paste", "Paste configuration"),
        ],
        widget=forms.RadioSelect,
        initial="upload",
    )
    appliance_file = forms.ChoiceField(label="File on the appliance", required=False)
    upload = forms.FileField(label="File", required=False)
    pasted = forms.CharField(label="Configuration", widget=forms.Textarea, required=False, strip=False)
    passphrase = forms.CharField(
        label="Passphrase",
        widget=forms.PasswordInput,
        required=False,
        strip=False,
        help_text="Only for a file saved with encrypted passphrases.",
    )

    def __init__(self, *args, **kwargs):
        # Its own ids: the save form on the same page has a "passphrase" too, and each label needs its field.
        super().__init__(*args, auto_id="id_load_%s", **kwargs)
        self.fields["appliance_file"].choices = [("", "—")] + [
            (name, name) for name in configfile.saved_files()
        ]

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if upload and upload.size > settings.CONFIG_FILE_MAX_BYTES:
            raise forms.ValidationError(f"The file is larger than the limit of {size_limit_text()}.")
        return upload

    def clean(self):
        cleaned = super().clean()
        source = cleaned.get("source")
        if source == "appliance" and not cleaned.get("appliance_file"):
            self.add_error("appliance_file", "Choose a file saved on the appliance.")
        elif source == "upload" and not cleaned.get("upload"):
            self.add_error("upload", "Choose a file to upload.")
        elif source == "paste" and not cleaned.get("pasted", "").strip():
            self.add_error("pasted", "Paste the configuration XML.")
        return cleaned

    def data_and_name(self) -> tuple[bytes, str]:
        source = self.cleaned_data["source"]
        if source == "appliance":
            name = self.cleaned_data["appliance_file"]
            return (configfile.configuration_dir() / name).read_bytes(), f"file {name} on the appliance"
        if source == "upload":
            upload = self.cleaned_data["upload"]
            return upload.read(), f"uploaded file {upload.name}"
        return self.cleaned_data["pasted"].encode("utf-8"), "pasted configuration"

    def forget_large_paste(self) -> None:
        """Shown again, the form leaves a large paste out (the note says so) instead of sending it back."""
        pasted = self.data.get("pasted", "")
        if len(pasted) > ECHOED_PASTE_MAX_CHARS:
            self.data = self.data.copy()
            self.data["pasted"] = ""
            self["pasted"].help_text = (
                f"The configuration you pasted ({filesizeformat(len(pasted))}) is not shown again: "
                "paste it again once corrected."
            )


def _shown(problems: list[str]) -> list[str]:
    """The first problems, each cut short: enough to correct the document, never the document itself."""
    shown = [
        p if len(p) <= PROBLEM_MAX_CHARS else p[:PROBLEM_MAX_CHARS] + "…" for p in problems[:PROBLEMS_SHOWN]
    ]
    if len(problems) > PROBLEMS_SHOWN:
        shown.append(f"… and {len(problems) - PROBLEMS_SHOWN} more problems.")
    return shown


def _page(request, save_form, load_form, status=200, problems=(), **extra):
    if load_form.is_bound:
        load_form.forget_large_paste()
    context = {"save_form": save_form, "load_form": load_form, "saved_files": configfile.saved_files()}
    return render(
        request,
        "appliance/config_file.html",
        {**context, "problems": _shown(list(problems)), **extra},
        status=status,
    )


@requires(Capability.EXPORT_MASKED)
def config_file(request: ConsoleRequest):
    save_form = SaveForm(request.POST or None, user=request.user)
    if request.method == "POST" and save_form.is_valid():
        mode = SecretMode(save_form.cleaned_data["passphrases"])
        passphrase = save_form.cleaned_data["passphrase"] or None
        if save_form.cleaned_data["operation"] == "save":
            path = configfile.save_on_appliance(request.user, mode, passphrase, source=source_of(request))
            messages.success(request, f'The configuration has been saved as "{path.name}".')
            return redirect("config_file")
        document = configfile.running_document(request.user, mode, passphrase, source_of(request))
        response = HttpResponse(
            document.encode("latin-1"), content_type="application/xml; charset=ISO-8859-1"
        )
        filename = f"config-{timezone.now():%Y%m%dT%H%M%S}.xml"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    return _page(request, save_form, LoadForm(), status=400 if request.method == "POST" else 200)


@requires(Capability.PREVIEW)
@require_POST
def load_config(request: ConsoleRequest):
    load_form = LoadForm(request.POST, request.FILES)
    save_form = SaveForm(user=request.user)
    if not load_form.is_valid():
        return _page(request, save_form, load_form, status=400)
    data, name = load_form.data_and_name()
    try:
        result = configfile.load(
            request.user,
            data,
            load_form.cleaned_data["passphrase"] or None,
            f"loaded {name}",
            source_of(request),
        )
    except ConfigFileError as error:
        messages.error(request, f"The {name} cannot be loaded. Nothing was changed.")
        return _page(request, save_form, load_form, status=400, problems=error.problems)
    except workflow.ChangeRefused as refusal:
        messages.error(request, f"{refusal}. Nothing was changed.")
        return _page(request, save_form, load_form, status=409, problems=refusal.problems)
    if isinstance(result, workflow.Preview):
        messages.warning(
            request, "Read-Only Operator: this is what loading would change. Nothing was stored."
        )
        return _page(request, save_form, LoadForm(), preview=result.changes)
    messages.success(request, "The configuration has been loaded. Review and commit the changes.")
    return redirect("uncommitted_changes")

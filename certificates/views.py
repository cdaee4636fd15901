"""Network > Certificates: the list, Add Certificate, one certificate's page, Certificate Authorities."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from appliance import audit, workflow
from appliance.alerts import Severity
from appliance.audit import Action
from appliance.config.sections import registry
from appliance.roles import Capability, require, requires
from appliance.views.common import (
    ConsoleRequest,
    partial_wanted,
    source_of,
    staged_form_page,
    submit_change,
)
from certificates import diagnostics, downloads, forms, pki, store, trust
from certificates.models import AuthoritySettings, Certificate, CustomAuthority

SORTS = {
    "name": "name",
    "common_name": "common_name",
    "issuer": "issuer",
    "expires": "not_after",
}
ATTENTION_LISTED = 10  # certificates named in the summary line above the list


@requires(Capability.VIEW_CONFIG)
def certificate_list(request: ConsoleRequest):
    # The PEM stays: the diagnostics read each certificate of the page (no query per row).
    level = request.mode.seen("certificates")
    certificates = Certificate.objects.at(level).defer("private_key_sealed", "pending_key_sealed")
    query = request.GET.get("q", "").strip()
    if query:
        certificates = certificates.filter(
            Q(name__icontains=query)
            | Q(common_name__icontains=query)
            | Q(domains__icontains=query)
            | Q(issuer__icontains=query)
        )
    sort = request.GET.get("sort", "name")
    field = SORTS.get(sort.removeprefix("-"), "name")
    certificates = certificates.order_by(f"-{field}" if sort.startswith("-") else field, "name")
    page = Paginator(certificates, 50).get_page(request.GET.get("page"))
    config = diagnostics.diagnostics_config(request.mode, full=False)
    used = registry.where_used_in("certificates", config)
    findings = diagnostics.summary(page, config)
    rows = [
        (c, used.get(c.name, []), diagnostics.tally(findings[c.name]), diagnostics.worst(findings[c.name]))
        for c in page
    ]
    attention = [(c, worst) for c, _, _, worst in rows if worst and worst.severity != Severity.INFORMATION]
    context = {
        "page": page,
        "rows": rows,
        "attention": attention[:ATTENTION_LISTED],
        "attention_count": len(attention),
        "attention_more": max(len(attention) - ATTENTION_LISTED, 0),
        "attention_error": any(worst.severity == Severity.CRITICAL for _, worst in attention),
        "query": query,
        "sort": sort,
        "authority_settings": AuthoritySettings.load(),
        "custom_count": CustomAuthority.objects.count(),
    }
    template = "certificates/_table.html" if partial_wanted(request) else "certificates/list.html"
    return render(request, template, context)


@requires(Capability.VIEW_CONFIG)
def add_certificate(request: ConsoleRequest):
    option = request.POST.get("option") or request.GET.get("option") or "self_signed"
    form_class = {
        "self_signed": forms.SelfSignedForm,
        "import": forms.ImportForm,
        "paste": forms.PasteForm,
    }.get(option, forms.SelfSignedForm)
    form = form_class(request.POST or None, request.FILES or None)
    level = request.mode.seen("certificates")

    def change(data):
        if option == "import":

            def apply():
                _, outcome = store.import_pkcs12(level, data["name"], form.pkcs12, data["accept_dates"])
                return outcome

            return "imported a PKCS#12 certificate", apply
        if option == "paste":

            def apply():
                return store.paste(
                    level,
                    data["name"],
                    data["certificate"].encode(),
                    data["private_key"],
                    data["key_passphrase"] or None,
                    data["intermediates"].encode() or None,
                    data["accept_dates"],
                )

            return f"pasted certificate {data['name']}", apply

        key = pki.generate_key(form.private_key_type())  # seconds for RSA 4096: before the submit

        def apply():
            store.create_self_signed(
                level,
                data["name"],
                form.subject(),
                data["expiration"],
                data["alternative_names"],
                form.private_key_type(),
                key,
            )
            return workflow.Outcome(
                notes=[f"'{data['name']}' is ready: download its signing request after you commit."]
            )

        return f"created self-signed certificate {data['name']}", apply

    return staged_form_page(
        request,
        form,
        change,
        full_template="certificates/add.html",
        partial_template="certificates/_add_form.html",
        context={"option": option},
        success_url=reverse("certificates:list"),
    )


def _entry(request: ConsoleRequest, name: str) -> Certificate:
    """Certificate ``name`` of the level the request's mode sees."""
    certificate = Certificate.objects.at(request.mode.seen("certificates")).filter(name=name).first()
    if certificate is None:
        raise Http404(f"There is no certificate named '{name}'.")
    return certificate


ACTIONS = {
    "upload_signed": (forms.UploadSignedForm, "uploaded the signed certificate of {name}"),
    "add_intermediates": (forms.IntermediatesForm, "added intermediates to {name}"),
    "remove_intermediate": (None, "removed an intermediate from {name}"),
    "renew": (forms.RenewForm, "renewed {name}"),
    "delete": (None, "deleted certificate {name}"),
}


def _operation(action: str, name: str, data: dict, request):
    level = request.mode.seen("certificates")
    if action == "upload_signed":
        return lambda: store.upload_signed(
            level, name, forms.uploaded_bytes(data["signed_cert"]), data["accept_dates"]
        )
    if action == "add_intermediates":
        return lambda: store.add_intermediates(level, name, forms.uploaded_bytes(data["interm_cert"]))
    if action == "remove_intermediate":
        return lambda: store.remove_intermediate(level, name, request.POST.get("fingerprint", ""))
    if action == "renew":
        key = store.renewal_key(level, name) if data["new_key"] else None  # made before the submit
        return lambda: workflow.Outcome(notes=[store.renew(level, name, data["new_key"], key)])
    return lambda: store.delete(request.mode, name)


@requires(Capability.VIEW_CONFIG)
def certificate_detail(request: ConsoleRequest, name: str):
    entry = _entry(request, name)
    context = _detail_context(request, entry)
    if request.method != "POST":
        return render(request, "certificates/detail.html", context)
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        messages.error(request, "Choose what to do with the certificate.")
        return render(request, "certificates/detail.html", context, status=400)
    form_class, description = ACTIONS[action]
    data = {}
    if form_class is not None:
        form = form_class(request.POST, request.FILES)
        context[f"{action}_form"] = form
        if not form.is_valid():
            return render(request, "certificates/detail.html", context, status=400)
        data = form.cleaned_data
    success = (
        reverse("certificates:list") if action == "delete" else reverse("certificates:detail", args=[name])
    )
    return submit_change(
        request,
        description.format(name=name),
        _operation(action, name, data, request),
        success_url=success,
        template="certificates/detail.html",
        context=context,
    )


def _detail_context(request, entry: Certificate) -> dict:
    certificate = entry.certificate
    config = diagnostics.diagnostics_config(request.mode, full=False)  # the MX hosts come by htmx (mx_check)
    return {
        "entry": entry,
        "certificate": certificate,
        "subject": certificate.subject.rfc4514_string(),
        "key_description": pki.key_description(certificate.public_key()),
        "fingerprint": pki.fingerprint(certificate),
        "served_chain": [certificate, *entry.chain],
        "chain_notes": store.chain_notes(entry),
        "used_by": registry.where_used_in("certificates", config).get(entry.name, []),
        "diagnostics": diagnostics.diagnose(entry, config, lookup_mx=False),
        "mx_listeners": [
            item["listener_name"]
            for item in config.get("listeners", [])
            if item["certificate_name"] == entry.name
        ],
        "committed": downloads.is_committed(entry),
        "upload_signed_form": forms.UploadSignedForm(),
        "add_intermediates_form": forms.IntermediatesForm(),
        "renew_form": forms.RenewForm(),
        "export_form": forms.ExportForm(user=request.user, initial={"file_name": entry.name}),
    }


@requires(Capability.VIEW_CONFIG)
def certificate_mx_check(request: ConsoleRequest, name: str):
    """The certificate's names against the MX hosts of its listeners' domains: DNS lookups (up to
    ``diagnostics.MX_BUDGET`` seconds), so the certificate page loads this part after itself."""
    entry = _entry(request, name)
    findings = diagnostics.mx_findings(
        entry.name, entry.certificate, diagnostics.diagnostics_config(request.mode)
    )
    return render(request, "certificates/_mx_findings.html", {"diagnostics": findings})


@requires(Capability.VIEW_CONFIG)
@require_POST  # it is recorded (downloads.record): a GET changes nothing
def download_csr(request: ConsoleRequest, name: str):
    entry = _entry(request, name)
    if not entry.csr_pem:
        raise Http404(f"'{name}' has no signing request.")
    downloads.record(entry, request.user)
    response = HttpResponse(entry.csr_pem, content_type="application/pkcs10")
    response["Content-Disposition"] = f'attachment; filename="{name}.csr"'
    return response


@requires(Capability.VIEW_CONFIG)
@require_POST
def export_certificate(request: ConsoleRequest, name: str):
    entry = _entry(request, name)
    form = forms.ExportForm(request.POST, user=request.user)
    if form.is_valid() and form.cleaned_data["what"] == "pkcs12":
        require(request.user, Capability.EXPORT_SECRETS)
        profile = form.cleaned_data["profile"] or pki.Pkcs12Profile.MODERN
        try:
            payload = store.export_pkcs12(entry.level, name, form.cleaned_data["password"], profile)
        except pki.CertificateError as refusal:
            form.add_error("password", str(refusal))
    if not form.is_valid():
        context = {**_detail_context(request, entry), "export_form": form}
        return render(request, "certificates/detail.html", context, status=400)
    data = form.cleaned_data
    if data["what"] == "pkcs12":
        filename, content_type = f"{data['file_name']}.p12", "application/x-pkcs12"
        detail = f"exported certificate {name} with its private key (PKCS#12, {profile})"
    else:
        payload = store.export_pem(entry.level, name, full_chain=data["what"] == "chain").encode()
        filename, content_type = f"{data['file_name']}.pem", "application/x-pem-file"
        detail = f"exported certificate {name} as PEM ({data['what']})"
    audit.record(request.user.username, Action.EXPORT, detail, source_of(request))
    response = HttpResponse(payload, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@requires(Capability.VIEW_CONFIG)
def authorities(request: ConsoleRequest):
    settings = AuthoritySettings.load()
    settings_form = forms.AuthoritySettingsForm(
        initial={
            "system_list_enabled": settings.system_list_enabled,
            "custom_list_enabled": settings.custom_list_enabled,
        }
    )
    upload_form = forms.CustomAuthorityForm()
    context = {
        "settings": settings,
        "settings_form": settings_form,
        "upload_form": upload_form,
        "custom": CustomAuthority.objects.all(),
        "system_count": len(trust.system_list()),
    }
    if request.method != "POST":
        return render(request, "certificates/authorities.html", context)
    action = request.POST.get("action")
    if action == "settings":
        form = context["settings_form"] = forms.AuthoritySettingsForm(request.POST)
        form.is_valid()
        apply = lambda: store.set_authority_lists(  # noqa: E731
            form.cleaned_data["system_list_enabled"], form.cleaned_data["custom_list_enabled"]
        )
        description = "edited the Certificate Authorities settings"
    elif action == "add":
        form = context["upload_form"] = forms.CustomAuthorityForm(request.POST, request.FILES)
        if not form.is_valid():
            return render(request, "certificates/authorities.html", context, status=400)
        data = forms.uploaded_bytes(form.cleaned_data["custom_ca_file"])
        apply = lambda: store.add_custom_authorities(data)  # noqa: E731
        description = "added CA certificates to the Custom List"
    elif action == "remove":
        fingerprint = request.POST.get("fingerprint", "")
        apply = lambda: workflow.Outcome(notes=[f"Removed {store.remove_custom_authority(fingerprint)}."])  # noqa: E731
        description = "removed a CA certificate from the Custom List"
    else:
        messages.error(request, "Choose what to change.")
        return render(request, "certificates/authorities.html", context, status=400)
    return submit_change(
        request,
        description,
        apply,
        success_url=reverse("certificates:authorities"),
        template="certificates/authorities.html",
        context=context,
    )


@requires(Capability.VIEW_CONFIG)
def system_authorities(request: ConsoleRequest):
    query = request.GET.get("q", "").strip().lower()
    listed = [a for a in trust.system_list() if query in a.subject.lower()]
    page = Paginator(listed, 50).get_page(request.GET.get("page"))
    return render(request, "certificates/system_authorities.html", {"page": page, "query": query})


@requires(Capability.VIEW_CONFIG)
def export_authorities(request: ConsoleRequest, which: str):
    if which == "system":
        pem = "".join(a.pem for a in trust.system_list())
    elif which == "custom":
        pem = "".join(a.pem.strip() + "\n" for a in CustomAuthority.objects.all())
    else:
        raise Http404("Export the system or the custom list.")
    response = HttpResponse(pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{which}-certificate-authorities.pem"'
    return response

"""Uncommitted Changes (commit, abandon) and Configuration Rollback."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from appliance import interfaces, workflow
from appliance.config import checks
from appliance.config.diff import diff
from appliance.config.sections import registry
from appliance.models import ConfigVersion
from appliance.roles import Capability, requires
from appliance.views.common import ConsoleRequest, back_to_next, partial_wanted, source_of


class CommitForm(forms.Form):
    comment = forms.CharField(label="Comment", max_length=1000, required=False)
    confirm_needed = forms.BooleanField(
        label="Roll back automatically unless confirmed within", required=False
    )
    confirm_minutes = forms.IntegerField(
        label="minutes", min_value=1, max_value=60, initial=10, required=False
    )


@requires(Capability.VIEW_CONFIG)
def uncommitted_changes(request: ConsoleRequest):
    form = CommitForm(request.POST or None)
    problems = []
    if request.method == "POST" and form.is_valid():
        minutes = form.cleaned_data["confirm_minutes"] or 10 if form.cleaned_data["confirm_needed"] else None
        try:
            version = workflow.commit(request.user, form.cleaned_data["comment"], source_of(request), minutes)
        except workflow.ChangeRefused as refusal:
            messages.error(request, str(refusal))
            problems = refusal.problems
        else:
            if version is None:
                messages.info(request, "There were no changes to commit.")
            else:
                for warning in workflow.commit_warnings(version):
                    messages.warning(request, warning)
                messages.success(request, f"Your changes have been committed (version {version.number}).")
                if minutes:
                    messages.warning(
                        request,
                        f"Confirm version {version.number} within {minutes} minutes, or it rolls back by itself.",
                    )
            return redirect("uncommitted_changes")
    candidate = registry.candidate()
    changes = diff(workflow.running_config(), candidate)
    host, port = _browser_target(request)
    affected = interfaces.console_change(
        workflow.machine_config(), registry.for_machine(candidate, settings.MACHINE_NAME), host, port
    )
    if request.method != "POST" and affected:
        form = CommitForm(initial={"confirm_needed": True, "confirm_minutes": 10})
    return render(
        request,
        "appliance/uncommitted.html",
        {
            "form": form,
            "changes": changes,
            "problems": problems,
            "advice": checks.warnings(candidate) if changes else [],
            "affected_interface": affected,
        },
        status=409 if problems else 200,
    )


def _browser_target(request) -> tuple[str, int]:
    """The host and port the browser connected to, as its Host header says."""
    host = request.get_host()
    name, separator, port = host.rpartition(":")
    if separator and port.isdigit() and not host.endswith("]"):
        return name.strip("[]"), int(port)
    return host.strip("[]"), int(request.get_port())


@requires(Capability.COMMIT)
@require_POST
def abandon_changes(request: ConsoleRequest):
    try:
        abandoned = workflow.abandon(
            request.user, source_of(request), confirmed=request.POST.get("confirmed") == "1"
        )
    except workflow.ConfirmationNeeded as question:
        return _confirm(request, question, "abandon_changes", "Abandon Changes anyway", {})
    except workflow.ChangeRefused as refusal:
        messages.error(request, str(refusal))
    else:
        if abandoned:
            messages.success(request, "Your changes have been abandoned.")
        else:
            messages.info(request, "There were no changes to abandon.")
    return redirect("uncommitted_changes")


@requires(Capability.VIEW_CONFIG)
def rollback(request: ConsoleRequest):
    if request.method == "POST":
        try:
            number = int(request.POST.get("number", ""))
        except ValueError:
            messages.error(request, "Choose a version to roll back to.")
            return redirect("rollback")
        try:
            result = workflow.rollback_to(
                request.user, number, source_of(request), confirmed=request.POST.get("confirmed") == "1"
            )
        except workflow.ConfirmationNeeded as question:
            return _confirm(
                request, question, "rollback", f"Stage version {number} anyway", {"number": number}
            )
        except workflow.ChangeRefused as refusal:
            messages.error(request, str(refusal))
            return redirect("rollback")
        if isinstance(result, workflow.Preview):
            messages.warning(
                request, "Read-Only Operator: this is what the rollback would change. Nothing was stored."
            )
            return render(request, "appliance/rollback.html", _rollback_context(preview=result.changes))
        messages.success(
            request,
            f"Version {number} is staged. Review and commit it to roll back the running configuration.",
        )
        return redirect("uncommitted_changes")
    return render(request, "appliance/rollback.html", _rollback_context())


def _confirm(request, question: workflow.ConfirmationNeeded, url_name: str, button: str, fields: dict):
    """Ask again before destroying what the warnings name."""
    context = {"question": question, "action": url_name, "button": button, "fields": fields}
    return render(request, "appliance/confirm.html", context, status=409)


def _rollback_context(**extra):
    return {"versions": ConfigVersion.objects.defer("xml"), "running": workflow.running_number(), **extra}


@requires(Capability.VIEW_CONFIG)
def rollback_diff(request: ConsoleRequest, number: int):
    version = ConfigVersion.objects.filter(number=number).first()
    if version is None:
        raise Http404(f"Version {number} is not kept on this appliance.")
    changes = diff(workflow.running_config(), workflow.version_config(version))
    template = "appliance/_rollback_diff.html" if partial_wanted(request) else "appliance/rollback_diff.html"
    return render(request, template, {"version": version, "changes": changes})


@requires(Capability.COMMIT)
@require_POST
def confirm_commit(request: ConsoleRequest):
    pending = workflow.confirm(request.user, source_of(request))
    if pending is None:
        messages.info(request, "No commit is waiting for confirmation.")
    else:
        messages.success(request, f"Version {pending.number} is confirmed and stays.")
    return back_to_next(request, "overview")

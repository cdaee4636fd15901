"""The time range of the TLS Connections report and the Message Tracking search."""

from __future__ import annotations

import datetime

from django import forms
from django.utils import timezone

RANGES = {
    "hour": ("Last Hour", datetime.timedelta(hours=1)),
    "day": ("Day (last 24 hours)", datetime.timedelta(days=1)),
    "week": ("Week (last 7 days)", datetime.timedelta(days=7)),
    "month": ("30 days", datetime.timedelta(days=30)),
    "quarter": ("90 days", datetime.timedelta(days=90)),
}
CUSTOM = "custom"
LONGEST = datetime.timedelta(days=366)


class TimeRangeForm(forms.Form):
    """Time Range, as the ESA's reports: a fixed span ending now, or a custom range of days."""

    range = forms.ChoiceField(
        label="Time Range",
        choices=[*((key, label) for key, (label, _) in RANGES.items()), (CUSTOM, "Custom Range")],
        initial="day",
        required=False,
    )
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Included."
    )

    def clean(self):
        data = super().clean()
        if data.get("range") != CUSTOM:
            return data
        start, end = data.get("start"), data.get("end")
        if start is None:
            self.add_error("start", "Give the first day of the custom range.")
        if end is None:
            self.add_error("end", "Give the last day of the custom range.")
        if start and end and end < start:
            self.add_error("end", f"The range ends before it starts ({start:%Y-%m-%d}).")
        elif start and end and end - start > LONGEST:
            self.add_error("end", "A custom range is at most one year.")
        return data

    def span(self) -> tuple[datetime.datetime, datetime.datetime, str]:
        """(start, end, description) of a valid form; the end is excluded."""
        data = self.cleaned_data
        now = timezone.now()
        choice = data.get("range") or "day"
        if choice != CUSTOM:
            label, length = RANGES[choice]
            return now - length, now, label
        zone = timezone.get_current_timezone()
        start = datetime.datetime.combine(data["start"], datetime.time(), zone)
        end = datetime.datetime.combine(data["end"] + datetime.timedelta(days=1), datetime.time(), zone)
        return start, end, f"{data['start']:%Y-%m-%d} to {data['end']:%Y-%m-%d}"


class TrackingSearchForm(forms.Form):
    sender = forms.CharField(label="Envelope Sender", required=False, max_length=320, help_text="Contains.")
    recipient = forms.CharField(
        label="Envelope Recipient", required=False, max_length=320, help_text="Contains."
    )
    subject = forms.CharField(label="Subject", required=False, max_length=998, help_text="Contains.")
    mid = forms.IntegerField(label="Message ID (MID)", required=False, min_value=1)
    received_after = forms.DateTimeField(
        label="Received after",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    received_before = forms.DateTimeField(
        label="Received before",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean(self):
        data = super().clean()
        after, before = data.get("received_after"), data.get("received_before")
        if after and before and before <= after:
            self.add_error("received_before", "This is not after the 'Received after' time.")
        return data

"""Centralized Management: the machines that share this database's committed configuration."""

from __future__ import annotations

from django.db import models

MAIN_GROUP = "Main_Group"  # the group the ESA puts a machine in when none is named


class Cluster(models.Model):
    """The cluster the machines of this database form: one row, or none (an appliance of its own)."""

    name = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class Machine(models.Model):
    """A machine of the cluster, and what it last reported: the version it runs, and when. Its group is
    configuration (``Group``), committed like the settings it decides."""

    name = models.CharField(max_length=64, unique=True)
    joined = models.DateTimeField(auto_now_add=True)
    applied_version = models.PositiveIntegerField(null=True)
    checked_in = models.DateTimeField(null=True)
    running = models.BooleanField(default=False)  # False once it stopped cleanly

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Group(models.Model):
    """A group of machines (candidate configuration, the ``<cluster_groups>`` section): settings defined
    for the group apply to each of its machines that has none of its own."""

    name = models.CharField(max_length=64, unique=True)
    machines = models.JSONField(default=list)  # machine names

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Override(models.Model):
    """A feature's section defined at a group or machine level in the candidate ("Override Settings");
    its rows at that level are the section's own rows, marked with the level."""

    section = models.CharField(max_length=64)
    level = models.CharField(max_length=140)

    class Meta:
        ordering = ["section", "level"]
        constraints = [models.UniqueConstraint(fields=["section", "level"], name="override_once_per_level")]

    def __str__(self):
        return f"{self.section} at {self.level}"

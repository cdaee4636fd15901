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
    """A machine of the cluster, and what it last reported: the version it runs, and when."""

    name = models.CharField(max_length=64, unique=True)
    group = models.CharField(max_length=64, default=MAIN_GROUP)
    joined = models.DateTimeField(auto_now_add=True)
    applied_version = models.PositiveIntegerField(null=True)
    checked_in = models.DateTimeField(null=True)
    running = models.BooleanField(default=False)  # False once it stopped cleanly

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

"""Managers whose queries name whose rows they read, as ``objects.using(alias)`` names a database: a
level's (``AtLevel.at(level)``: a feature's rows in the candidate) or a machine's
(``OfMachine.of(machine)``: IP interfaces, the gateway's records). A query that names neither is
refused, so a forgotten level or machine is a bug that shows rather than every level's rows."""

from __future__ import annotations

from django.db import models


class ScopeNotNamed(Exception):
    """A query of ``objects`` that does not say which level's or machine's rows it reads."""


class ScopedQuerySet(models.QuerySet):
    """The rows of one scope (``{column: value}``); the rows it creates are of that scope too."""

    scope: dict[str, str] = {}

    def _clone(self):
        clone = super()._clone()
        clone.scope = self.scope
        return clone

    def create(self, **kwargs):
        return super().create(**kwargs, **self.scope)

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            for column, value in self.scope.items():
                setattr(obj, column, value)
        return super().bulk_create(objs, *args, **kwargs)


class ScopedManager(models.Manager):
    column = ""  # the column naming each row's scope
    method = ""  # the manager's method that names the scope

    def get_queryset(self):
        name = self.model.__name__
        raise ScopeNotNamed(
            f"{name}.objects reads the rows of one {self.column}: say which, "
            f"{name}.objects.{self.method}({self.column}) ({name}.{self.model._meta.default_manager.name} "
            f"has every {self.column}'s)"
        )

    def scoped(self, value: str) -> ScopedQuerySet:
        rows = ScopedQuerySet(self.model, using=self._db).filter(**{self.column: value})
        rows.scope = {self.column: value}
        return rows


class OfMachine(ScopedManager):
    """The rows of one machine of the cluster ("": an appliance of its own)."""

    column, method = "machine", "of"

    def of(self, machine: str) -> ScopedQuerySet:
        return self.scoped(machine)

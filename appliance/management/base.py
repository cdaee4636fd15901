"""The frame of every console command: acting user, exit status, one-line errors.

Exit status: 0 done (warnings on stderr as ``Warning: …``), 1 refused or failed
(``Error: …`` on stderr, never a traceback), 2 usage error (argparse).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from appliance import modes, workflow
from appliance.config import candidate_levels, levels
from appliance.config.xmlfile import ConfigFileError
from appliance.models import User


class Refused(Exception):
    """The command cannot do what was asked; the message says why."""


def add_common_options(parser, defaults: bool = True) -> None:
    """--user and --force; on subcommands without defaults, so either place works."""
    keep = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--user",
        dest="username",
        help="act as this user, with this user's role",
        **(keep or {"default": "admin"}),
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="accept what would otherwise be refused, as a warning",
        **keep,
    )
    parser.add_argument(
        "--mode",
        metavar="LEVEL",
        help="Centralized Management: the level to see and change, cluster (the default), "
        "group:NAME or machine:NAME",
        **(keep or {"default": "cluster"}),
    )


class ApplianceCommand(BaseCommand):
    requires_system_checks = []
    acts_as_user = True  # --user and --force; runappliance acts as nobody
    mode: levels.Mode  # the level the command sees and changes: --mode's (``handle``)

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if self.acts_as_user:
            add_common_options(parser)
        return parser

    def warn(self, message: str) -> None:
        self.stderr.write(f"Warning: {message}")

    def service_line(self, line: str) -> None:
        """A line of a running service (runappliance, rungateway): to the terminal at once, and to
        DATA_DIR/logs/console.log; ``Warning:`` and ``Error:`` lines to standard error."""
        stream = self.stderr if line.startswith(("Warning:", "Error:")) else self.stdout
        stream.write(line)
        stream.flush()
        level = logging.INFO if stream is self.stdout else logging.WARNING
        logging.getLogger("appliance.services").log(level, line)

    def report(self, result, done: str) -> None:
        """Print ``done`` and the outcome's notes and warnings, or a Read-Only Operator's preview."""
        if not isinstance(result, workflow.Preview):
            self.stdout.write(done)
            if isinstance(result, workflow.Outcome):
                for note in result.notes:
                    self.stdout.write(note)
                for warning in result.warnings:
                    self.warn(warning)
            return
        self.stdout.write("Preview only (Read-Only Operator): nothing was stored.")
        self.write_changes(result.changes)

    def write_changes(self, changes) -> None:
        """Each change of a diff (``config.diff``), a line each, with its fields indented below."""
        for section in changes:
            for change in section.objects:
                self.stdout.write(f"{section.title}: {change.name} {change.action}")
                for f in change.fields:
                    self.stdout.write(f"  {f.label}: {f.before} -> {f.after}")

    def acting_user(self, username: str) -> User:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise Refused(f"there is no user '{username}'")
        if not user.is_active:
            raise Refused(f"the account '{username}' is locked")
        return user

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except (Refused, PermissionDenied, CommandError, OSError) as exc:
            self._fail(str(exc))
        except workflow.ChangeRefused as refusal:
            self._fail("; ".join([str(refusal), *refusal.problems]))
        except ConfigFileError as error:
            self._fail("Parsing failed: " + "; ".join(error.problems))
        except workflow.DATABASE_UNREACHABLE as error:
            self._fail(
                f"the configuration database cannot be reached ({str(error).strip().splitlines()[0]}); "
                "nothing was changed"
            )
        except Exception:
            self._fail(f"internal error; the details are in {self._log_traceback()}")

    def _log_traceback(self) -> Path:
        """Keep the traceback for the developers, out of the administrator's terminal."""
        path = settings.DATA_DIR / "logs" / "console_errors.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write(f"{timezone.now():%Y-%m-%d %H:%M:%S} {' '.join(sys.argv)}\n{traceback.format_exc()}\n")
        return path

    def _fail(self, reason: str) -> None:
        # Django's parser says "Error: …" itself when a command is called from code.
        self.stderr.write(f"Error: {reason.removeprefix('Error: ')}")
        sys.exit(1)

    def handle(self, *args, **options):
        user = self.acting_user(options["username"])
        self.mode = candidate_levels.mode_for(self.chosen_level(options["mode"]))
        return self.run(user, **options)  # each command defines run(user, **options)

    def chosen_level(self, text: str) -> str:
        try:
            return modes.checked_level(levels.parse(text))
        except ValueError as error:
            raise Refused(f"--mode: {error}") from None


class SubcommandCommand(ApplianceCommand):
    """A command whose first argument chooses what to do (``certconfig new …``), each a ``do_<name>``."""

    def subcommands(self, parser):
        """A function adding one subcommand, which takes --user and --force too."""
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        def action(name: str, help_text: str) -> argparse.ArgumentParser:
            sub = actions.add_parser(name, help=help_text)
            add_common_options(sub, defaults=False)
            return sub

        return action

    def run(self, user, action, **options):
        return getattr(self, f"do_{action.replace('-', '_')}")(user, **options)

    def stage(self, user, description: str, apply, done: str) -> None:
        self.report(workflow.submit(user, description, apply, "CLI", mode=self.mode), done)


def read_passphrase_file(path: str | None) -> str | None:
    """The first line of a passphrase file, trailing CR/LF stripped, as openssl's ``file:``."""
    if path is None:
        return None
    try:
        with Path(path).open(encoding="utf-8") as handle:
            passphrase = handle.readline().rstrip("\r\n")
    except FileNotFoundError:
        raise Refused(f'the passphrase file "{path}" does not exist') from None
    except UnicodeDecodeError:
        raise Refused(f'the passphrase file "{path}" is not text') from None
    if not passphrase:
        raise Refused(f'the passphrase file "{path}" is empty')
    return passphrase

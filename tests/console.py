"""Running console commands in a test, in process: what they print, and how they refuse."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


def run(*args: str) -> tuple[str, str]:
    """Run a command that must succeed; its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused_with_output(*args: str) -> tuple[str, str]:
    """Run a command that must be refused: exit 1, one line "Error: …" on stderr, no traceback.

    Returns what it printed first (a connection test's report) and the error line.
    """
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_status:
        call_command(*args, stdout=out, stderr=err)
    assert exit_status.value.code == 1
    assert "Traceback" not in out.getvalue() + err.getvalue()
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), f"stderr was {err.getvalue()!r}"
    return out.getvalue(), lines[0]


def refused(*args: str) -> str:
    """As ``refused_with_output`` for a command that prints nothing else; the error line."""
    out, line = refused_with_output(*args)
    assert out == "", f"stdout was {out!r}"
    return line

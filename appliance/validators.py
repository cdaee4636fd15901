"""Validators shared by forms, console commands and the configuration file.

Each raises ValueError with a message in the administrator's words.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}$")


def validate_hostname(value: str) -> None:
    """A fully qualified or single-label host name (RFC 1123)."""
    name = value.rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(
            f"{value!r} is not a valid host name (letters, digits and hyphens, "
            "labels of at most 63 characters separated by dots)"
        )


def validate_ip_address(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


def validate_object_name(value: str) -> None:
    """Names of certificates, interfaces and the like."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name (up to 64 letters, digits, spaces and . _ - @, "
            "starting with a letter or digit)"
        )


def choice_validator(choices) -> Callable[[str], None]:
    """A validator accepting only the values of a TextChoices."""
    values = list(choices.values)

    def validate(value: str) -> None:
        if value not in values:
            raise ValueError(f"must be one of {', '.join(values)}, not {value!r}")

    return validate

#!/usr/bin/env python
"""The appliance's console commands (commit, saveconfig, loadconfig, …) and Django's own."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:  # an environment variable the operator set: a line, not a traceback
        sys.exit(f"Error: {error}")


if __name__ == "__main__":
    main()

"""Benchmark: the configuration file and the certificate list with 1,000 certificates.

Run: .venv/bin/python bench/configuration_file.py [COUNT]
It makes a throwaway data directory, sets up an appliance, copies the Demo
certificate under COUNT names (default 1,000) and times commit, save, load and
the Network > Certificates page (search and sort), each the median of 5 runs.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["APPLIANCE_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-")
os.environ.setdefault("APPLIANCE_HOSTNAME", "esa.example.com")
os.environ.setdefault("APPLIANCE_ADMIN_PASSWORD", "Bench-pass-42")
os.environ["DJANGO_SETTINGS_MODULE"] = "appliance.settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from appliance import bootstrap, configfile, workflow  # noqa: E402
from appliance.config.xmlfile import SecretMode  # noqa: E402
from appliance.models import User  # noqa: E402
from bench import large_config  # noqa: E402


def median_ms(action, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(count: int) -> None:
    call_command("migrate", verbosity=0)
    bootstrap.first_start()
    admin = User.objects.get(username="admin")
    workflow.submit(admin, "bench", large_config.rows(count, 0, 0))
    start = time.perf_counter()
    workflow.commit(admin, "bench")
    print(f"commit of {count + 1} certificates: {(time.perf_counter() - start) * 1000:.0f} ms")
    document = configfile.running_document(admin, SecretMode.PLAIN)
    print(
        f"save (plain): {median_ms(lambda: configfile.running_document(admin, SecretMode.PLAIN)):.0f} ms, "
        f"{len(document) / 1e6:.1f} MB"
    )
    print(
        f"load (parse, check, stage): {median_ms(lambda: configfile.load(admin, document.encode('latin-1'), None, 'bench')):.0f} ms"
    )
    client = Client()
    client.force_login(admin)
    page = lambda: client.get("/network/certificates/", {"q": "host9", "sort": "-expires"}, secure=True)  # noqa: E731
    assert page().status_code == 200
    print(f"certificate list page (search + sort, 50 a page): {median_ms(page):.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)

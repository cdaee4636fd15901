"""Benchmark: commit, save and load of a large configuration; seconds and peak memory.

Run: .venv/bin/python bench/configuration_file.py [--runs 3] [--counts 1000,10000,5000]

It makes a throwaway data directory (migrate, first start) and stages ``bench/large_config.py``'s
configuration: 1,000 certificates, 10,000 Destination Controls entries, 5,000 senders in the
IncomingMail listener's HAT. Every step then runs in a process of its own that does only that step
(``--step``), so that its peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``, which counts
Python, Django, lxml and OpenSSL alike) is the step's; the floor of such a process (Django set up,
one query) is measured the same way and shown as "process floor".

- **commit**: the first commit of the large configuration, then ``--runs`` commits of one small
  change on top of it (``destconfig edit``, staged by a process of its own). *cold*: a fresh process
  that parses the running version first, as ``manage.py commit`` does; *warm*: the running version
  already parsed and cached, as in a console worker that has just shown Uncommitted Changes.
- **save**: the running configuration as a file (``configfile.running_document``), plain and with
  encrypted passphrases (scrypt once per file). *cold* includes parsing the running version; *warm*
  is the median of three more saves in the same process.
- **load**: the saved file parsed, checked (every key against its certificate, references) and
  staged (``configfile.load``), plain and encrypted; the file is the running configuration, so
  nothing stays staged and the next run does the same work. *cold*/*warm* as for save.

Seconds are medians of ``--runs`` processes (each taken with ``time.perf_counter``); peak memory is
the largest ru_maxrss of the cold processes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cpu import machine_busy_seconds, own_cpu_seconds  # bench/cpu.py: the script's folder is on the path

PROJECT = Path(__file__).resolve().parent.parent
PASSPHRASE = "bench passphrase 42"


# --- one step, in a process of its own ------------------------------------------------------


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def step(name: str, data_dir: Path, counts: list[int], warm: bool, run: int) -> dict:
    sys.path.insert(0, str(PROJECT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "appliance.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from appliance import bootstrap, configfile, workflow
    from appliance.config.xmlfile import SecretMode
    from appliance.models import User
    from bench import large_config

    if name == "stage":
        call_command("migrate", interactive=False, verbosity=0)
        bootstrap.first_start()
        admin = User.objects.get(username="admin")
        seconds = timed(lambda: workflow.submit(admin, "a large configuration", large_config.rows(*counts)))
        return {"seconds": seconds, "peak": peak_mib()}
    admin = User.objects.get(username="admin")
    if name == "floor":
        return {"peak": peak_mib()}
    if name == "change":  # one small change to commit, as an administrator would type it
        call_command(
            "destconfig", "edit", "d00001.example.com", "--max-connections", str(run + 2),
            stdout=open(os.devnull, "w"),  # noqa: SIM115
        )  # fmt: skip
        return {}
    if warm:
        workflow.running_config()
    if name == "commit":
        version = None

        def commit():
            nonlocal version
            version = workflow.commit(admin, "bench")

        seconds = timed(commit)
        assert version is not None, "nothing to commit"
        return {"seconds": seconds, "peak": peak_mib(), "bytes": len(version.xml.encode("latin-1"))}
    mode = SecretMode.ENCRYPT if name.endswith("encrypt") else SecretMode.PLAIN
    passphrase = PASSPHRASE if mode is SecretMode.ENCRYPT else None
    saved = data_dir / f"saved-{mode}.xml"
    if name.startswith("save"):
        document = ""

        def save():
            nonlocal document
            document = configfile.running_document(admin, mode, passphrase)

        seconds, peak = timed(save), peak_mib()
        if not saved.exists():
            saved.write_bytes(document.encode("latin-1"))
        again = statistics.median(timed(save) for _ in range(3))
        return {"seconds": seconds, "peak": peak, "warm": again, "bytes": len(document.encode("latin-1"))}
    if name.startswith("load"):
        data = saved.read_bytes()
        load = lambda: configfile.load(admin, data, passphrase, "bench")  # noqa: E731
        seconds, peak = timed(load), peak_mib()
        assert not workflow.has_uncommitted_changes(), "the file differs from the running configuration"
        again = statistics.median(timed(load) for _ in range(2))
        return {"seconds": seconds, "peak": peak, "warm": again, "bytes": len(data)}
    raise SystemExit(f"unknown step {name}")


# --- the command ----------------------------------------------------------------------------


def run_step(data_dir: Path, counts: list[int], name: str, warm: bool = False, run: int = 0) -> dict:
    command = [
        sys.executable, __file__, "--step", name, "--data-dir", str(data_dir),
        "--counts", ",".join(map(str, counts)), "--run", str(run),
    ]  # fmt: skip
    if warm:
        command.append("--warm")
    env = {
        **os.environ,
        "APPLIANCE_DATA_DIR": str(data_dir),
        "APPLIANCE_HOSTNAME": "esa.example.com",
        "APPLIANCE_ADMIN_PASSWORD": "Bench-pass-42",
        "DJANGO_SETTINGS_MODULE": "appliance.settings",
    }
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"step {name} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="processes per measurement (default 3)")
    parser.add_argument(
        "--counts",
        default="1000,10000,5000",
        help="certificates, destinations, senders (default 1000,10000,5000)",
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args()
    counts = [int(value) for value in options.counts.split(",")]
    if options.step:
        print(json.dumps(step(options.step, options.data_dir, counts, options.warm, options.run)))
        return

    started, busy_before, own_before = time.perf_counter(), machine_busy_seconds(), own_cpu_seconds()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-configfile-"))
    rows = []  # (what, cold s, warm s, peak MiB, size)

    def median(results, key="seconds"):
        return statistics.median(result[key] for result in results)

    try:
        staged = run_step(data_dir, counts, "stage")
        floor = run_step(data_dir, counts, "floor")
        first = run_step(data_dir, counts, "commit")
        rows.append(
            (
                "commit, first (the whole configuration staged)",
                first["seconds"],
                None,
                first["peak"],
                first["bytes"],
            )
        )
        cold, warm, run = [], [], 0
        for _ in range(options.runs):
            for results, is_warm in ((cold, False), (warm, True)):
                run += 1
                run_step(data_dir, counts, "change", run=run)
                results.append(run_step(data_dir, counts, "commit", warm=is_warm, run=run))
        rows.append(
            ("commit, one change", median(cold), median(warm), max(r["peak"] for r in cold), cold[0]["bytes"])
        )
        for what, name in (
            ("save, plain passphrases", "save-plain"),
            ("save, encrypted passphrases", "save-encrypt"),
            ("load, plain passphrases", "load-plain"),
            ("load, encrypted passphrases", "load-encrypt"),
        ):
            results = [run_step(data_dir, counts, name) for _ in range(options.runs)]
            rows.append(
                (
                    what,
                    median(results),
                    median(results, "warm"),
                    max(r["peak"] for r in results),
                    results[0]["bytes"],
                )
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    print(
        f"{counts[0]:,} certificates, {counts[1]:,} destinations, {counts[2]:,} senders "
        f"(staged in {staged['seconds']:.1f} s); medians of {options.runs} runs; "
        f"process floor {floor['peak']:.0f} MiB"
    )  # fmt: skip
    print("| step | cold s | warm s | peak MiB | file KB |")
    print("|---|---:|---:|---:|---:|")
    for what, cold_s, warm_s, peak, size in rows:
        warm_text = "–" if warm_s is None else f"{warm_s:.2f}"
        print(f"| {what} | {cold_s:.2f} | {warm_text} | {peak:.0f} | {size / 1000:,.0f} |")
    elapsed = time.perf_counter() - started
    other = (machine_busy_seconds() - busy_before - (own_cpu_seconds() - own_before)) / elapsed * 100
    print(f"({elapsed:.0f} s; other CPU {max(other, 0):.0f} % of one core, out of {os.cpu_count() * 100} %)")


if __name__ == "__main__":
    main()

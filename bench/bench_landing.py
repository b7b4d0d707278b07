"""The landing page under load, as a ratio to a bare Django view that returns "hello", under the
same gunicorn, the same load and in the same run.

Three cases, each with `wrk -t2 -c32 -d10s` against 4 sync gunicorn workers (DEBUG=0,
PostgreSQL, the cache on Redis, persistent database connections as configured):
- hello: `/bench/hello/`, added by a bench-only URLconf (bench/landing_bench_urls.py), through
  the whole middleware stack;
- returning visitor: `/o/<slug>/` with the cookies of a visitor already assigned (1,000 of them,
  taken in turn by a Lua script): the assignment is read. A returning browser also sends back
  the CSRF cookie the page set on its first visit (a year's max-age), so each has one;
- first visit: `/o/<slug>/` with no cookie, so every request is a new visitor whose assignment is
  written (and who gets a cookie).
The offer is a card trial with two variants and no holdout, so every request renders the
landing page proper. Prints requests/s and p99 latency of each, and each landing case's ratio to
hello (requests/s, and hello's p99 over the case's, so that higher is better in both). With
`--runs N` (default 3) the three cases are measured N times in turn against the same server,
each run's figures are printed, and then the median of each figure and of each ratio: the
machine is shared, and one run can be unlucky.

Builds a throw-away PostgreSQL database (test_<database>_bench_landing, named after
DATABASE_URL's, so that two checkouts can bench at once) and drops it at the end; needs wrk
(`apt-get install wrk`) and Redis (CACHE_URL, default redis://127.0.0.1:6379/0). Loopback only;
each run is bounded by wrk's -d.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres CACHE_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python bench/bench_landing.py [--runs 3]
"""

import argparse
import http.client
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["FORETASTE_ENV"] = "development"
os.environ["DEBUG"] = "0"
os.environ.setdefault("CACHE_URL", "redis://127.0.0.1:6379/0")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from machine_info import machine  # noqa: E402 (bench/ is the script's folder, first on sys.path)
from serve import gunicorn, live_offer  # noqa: E402

SLUG = "bench-landing"
VISITORS = 1000
WORKERS = 4
LOAD = ("-t2", "-c32", "-d10s")


def seed() -> list[str]:
    """The offer, and the returning visitors' cookie ids, each already assigned."""
    from offers.models import Variant
    from trials import services

    now = timezone.now()
    offer = live_offer(slug=SLUG)
    Variant.objects.create(offer=offer, name="fortnight", weight=1, trial_days=14, position=1)
    visitors = [f"bench{n:038d}" for n in range(VISITORS)]
    for visitor in visitors:
        services.assignment_for_visitor(offer=offer, visitor=visitor, at=now)
    return visitors


def get(port: int, path: str, cookie: str = "") -> tuple[int, str, str]:
    """status, body and Set-Cookie of one GET on loopback."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return response.status, response.read().decode(), response.getheader("Set-Cookie") or ""
    finally:
        conn.close()


def check(port: int, visitor: str) -> None:
    """Before timing: each case answers what it should."""
    assert get(port, "/bench/hello/")[:2] == (200, "hello")
    status, html, cookie = get(port, f"/o/{SLUG}/", returning_cookie(visitor))
    assert status == 200 and "The terms" in html and "foretaste_visitor" not in cookie, (status, cookie)
    status, html, cookie = get(port, f"/o/{SLUG}/")
    assert status == 200 and "The terms" in html and "foretaste_visitor=" in cookie, (status, cookie)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, script: str | None = None) -> tuple[float, float, int]:
    """requests/s, p99 in ms, and the count of non-2xx/3xx answers."""
    command = ["wrk", *LOAD, "--latency", "--timeout", "5s", url]
    if script:
        command[1:1] = ["-s", script]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE).groups()
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if errors:
        print("   ", errors.group(0))
    return rate, float(value) * _UNITS[unit], int(bad.group(1)) if bad else 0


def returning_cookie(visitor: str) -> str:
    """What a returning browser sends: its visitor id and the CSRF secret (32 letters and
    digits, Django's format) set on its first visit."""
    return f"foretaste_visitor={visitor}; csrftoken={secrets.token_hex(16)}"


def returning_script(folder: Path, visitors: list[str]) -> str:
    path = folder / "returning.lua"
    cookies = ",".join(f'"{returning_cookie(visitor)}"' for visitor in visitors)
    path.write_text(
        f"local cookies = {{{cookies}}}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        '  return wrk.format("GET", nil, {["Cookie"] = cookies[(n % #cookies) + 1]})\n'
        "end\n"
    )
    return str(path)


def ratios(results: dict, name: str) -> tuple[float, float]:
    """A case's requests/s over hello's, and hello's p99 over the case's: higher is better in both."""
    (hello_rate, hello_p99, _), (rate, p99, _) = results["hello"], results[name]
    return rate / hello_rate, hello_p99 / p99


def report(title: str, results: dict) -> None:
    """Each case's requests/s and p99, and each landing case's ratios to hello's."""
    print(f"{title}:")
    for name, (rate, p99, bad) in results.items():
        line = f"  {name:18} {rate:9.1f} req/s   p99 {p99:8.1f} ms"
        if name != "hello":
            rate_ratio, p99_ratio = ratios(results, name)
            line += f"   ratio {rate_ratio:.2f} (req/s), {p99_ratio:.2f} (p99)"
        if bad:
            line += f"   non-2xx: {bad}"
        print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measurements of the three cases, in turn (default 3)")
    runs = max(1, parser.parse_args().runs)
    # Skipped, saying so, where it cannot run (`make bench` runs every script).
    if connection.vendor != "postgresql":
        print("bench_landing: skipped, it needs PostgreSQL (set DATABASE_URL=postgres://...).")
        return
    if shutil.which("wrk") is None:
        print("bench_landing: skipped, it needs wrk (apt-get install wrk).")
        return
    connection.settings_dict["TEST"]["NAME"] = f"test_{connection.settings_dict['NAME']}_bench_landing"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-landing-"))
    try:
        visitors = seed()
        with gunicorn(workers=WORKERS) as base:
            port = int(base.rsplit(":", 1)[1])
            check(port, visitors[0])
            script = returning_script(scratch, visitors)
            wrk(base + "/bench/hello/")  # warm-up: every worker imports and connects once
            wrk(base + f"/o/{SLUG}/", script)
            cases = {"hello": ("/bench/hello/", None), "returning visitor": (f"/o/{SLUG}/", script),
                     "first visit": (f"/o/{SLUG}/", None)}  # fmt: skip
            print(f"landing page vs hello, {WORKERS} sync gunicorn workers, wrk {' '.join(LOAD)}, DEBUG=0, PostgreSQL")
            print(f"machine: {machine()}")
            figures = []  # per run: {case: (req/s, p99 ms, non-2xx)}
            for run in range(1, runs + 1):
                figures.append({name: wrk(base + path, lua) for name, (path, lua) in cases.items()})
                report(f"run {run} of {runs}", figures[-1])
            if runs > 1:
                print(f"median of {runs} runs (each figure, and each run's ratio, on its own):")
                for name in cases:
                    rate, p99 = (statistics.median(run[name][i] for run in figures) for i in range(2))
                    line = f"  {name:18} {rate:9.1f} req/s   p99 {p99:8.1f} ms"
                    if name != "hello":
                        rate_ratio, p99_ratio = (
                            statistics.median(ratios(run, name)[i] for run in figures) for i in range(2)
                        )
                        line += f"   ratio {rate_ratio:.2f} (req/s), {p99_ratio:.2f} (p99)"
                    print(line)
            from trials.models import Assignment

            written = Assignment.objects.count() - VISITORS
            print(f"  first visits wrote {written} assignments (including the check and warm-up's)")
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

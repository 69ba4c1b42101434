"""Where a request's time goes: the floor, the hold, the check page and the confirm, profiled inside gunicorn.

Run: .venv/bin/python bench/profile_requests.py [--users 3] [--workers 3] [--bookings 600] [--floor-seconds 20]

gunicorn with production's settings (bench/settings.py) and bench/profiling.py's middleware first in the stack; one
Locust user per worker (so that the figures are a request's cost, not its queueing): the floor back to back, then
whole bookings (hold, check page, confirm) back to back, each with a prepared session. Prints, per request, the mean
time, the queries, and the time by layer and by kind of work. docs/benchmarks.md §6 records a run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ORGANISATION, served, vacuum_analyze  # noqa: E402
from bench.http_journey import locust, prepared_sessions  # noqa: E402

BATCH = 100  # bookings prepared at a time: booked well within the idle timer's minute, even under the profiler
REQUESTS = {
    "POST bench-floor": "floor",
    "POST bookings:time": "hold (POST time)",
    "GET bookings:check": "check page",
    "POST bookings:check": "confirm (POST check)",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--bookings", type=int, default=600)
    parser.add_argument("--floor-seconds", type=float, default=20)
    args = parser.parse_args()
    with served(workers=args.workers, sign_in=False) as (workdir, start):
        from django.core.management import call_command

        from registry.models import Organisation

        profiles = workdir / "profiles"
        profiles.mkdir()
        os.environ["BENCH_PROFILE_DIR"] = str(profiles)
        call_command("load_demo", verbosity=0)
        organisation = Organisation.objects.get(business_id=ORGANISATION[0])
        floor = prepared_sessions(args.users, organisation=organisation, holds=False, born=dt.date(1941, 1, 1))
        (workdir / "floor.json").write_text(json.dumps(floor))
        vacuum_analyze()
        server = start()
        options = {"url": server.url, "users": args.users, "workdir": workdir, "spawn_rate": args.users}
        env = {"BENCH_SESSIONS": str(workdir / "floor.json")}
        locust("FloorUser", seconds=args.floor_seconds, env=env, **options)
        # The bookings in batches, each prepared just before it is booked, as the steps before the hold leave the
        # session a moment earlier: its idle timer touched less than a minute ago (partners/middleware.py), so the
        # hold writes no session that a partner's hold would not.
        for batch in range(0, args.bookings, BATCH):
            count = min(BATCH, args.bookings - batch)
            born = dt.date(1921, 1, 1) + dt.timedelta(days=batch)
            bookings = prepared_sessions(count, organisation=organisation, holds=True, drafts_only=True, born=born)
            (workdir / "bookings.json").write_text(json.dumps(bookings))
            env = {"BENCH_SESSIONS": str(workdir / "bookings.json")}
            locust("BookingUser", seconds=60, env=env, **options)
        time.sleep(1)
        server.started.process.send_signal(15)  # the workers write their last sums on the way out
        server.started.process.wait(timeout=30)
        report(profiles)
    return 0


def report(directory: Path) -> None:
    sums: dict[str, dict] = defaultdict(
        lambda: {"n": 0, "ms": 0.0, "queries": 0, "query_ms": 0.0, "layers": {}, "kinds": {}}
    )
    for path in directory.glob("*.json"):
        for name, entry in json.loads(path.read_text()).items():
            total = sums[name]
            for key in ("n", "ms", "queries", "query_ms"):
                total[key] += entry[key]
            for part in ("layers", "kinds"):
                for label, ms in entry[part].items():
                    total[part][label] = total[part].get(label, 0.0) + ms
    shown = [(label, sums[name]) for name, label in REQUESTS.items() if sums[name]["n"]]
    print(f"\n  {'request':<22} {'n':>5} {'ms':>7} {'queries':>8} {'query ms':>9}")
    for label, entry in shown:
        n = entry["n"]
        print(
            f"  {label:<22} {n:>5} {entry['ms'] / n:>7.2f} {entry['queries'] / n:>8.1f} {entry['query_ms'] / n:>9.2f}"
        )
    for part, title in (("layers", "by layer (who spent it)"), ("kinds", "by kind of work")):
        labels = sorted(
            {label for _, entry in shown for label in entry[part]},
            key=lambda x: -sum(e[part].get(x, 0) / e["n"] for _, e in shown),
        )
        print(f"\n  ms per request, {title}")
        print(f"  {'':<48}" + "".join(f"{label[:18]:>20}" for label, _ in shown))
        for label in labels:
            cells = "".join(f"{entry[part].get(label, 0.0) / entry['n']:>20.2f}" for _, entry in shown)
            print(f"  {label:<48}{cells}")


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: what a password sign-in costs the server (argon2id at argon2-cffi's defaults).

    .venv/bin/python bench/passwords.py [--runs 7]

Hashes and verifies one password several times through `api.accounts.passwords` and prints
wall and CPU-time medians. A verify is what every sign-in attempt costs, right or wrong (an
unknown username is checked against a dummy hash), so with the failed sign-in limit (10 per
address per 5 minutes by default) this bounds the CPU one address can make us spend. The
hasher uses 4 lanes: on a machine with fewer free cores the wall time grows.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from api.accounts import passwords

PASSWORD = "correct horse battery staple"


def _median_ms(action: Callable[[], object], runs: int) -> tuple[float, float]:
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    stored = passwords.hash_password(PASSWORD)
    print(f"argon2id parameters: {stored.split('$')[3]}")
    for name, action in (("hash", lambda: passwords.hash_password(PASSWORD)),
                         ("verify (right)", lambda: passwords.check(stored, PASSWORD)),
                         ("verify (wrong)", lambda: passwords.check(stored, "not it at all")),
                         ("verify (no account)", lambda: passwords.check(None, PASSWORD))):
        wall, cpu = _median_ms(action, args.runs)
        print(f"{name:20} wall {wall:7.1f} ms   cpu {cpu:7.1f} ms")


if __name__ == "__main__":
    main()

"""Run every benchmark module (or those named: ``python -m bench metrics hmm``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from bench.report import print_table


def main(names: list[str]) -> int:
    here = Path(__file__).parent
    modules = sorted(
        info.name for info in pkgutil.iter_modules([str(here)]) if info.name.startswith("bench_")
    )
    wanted = [m for m in modules if not names or m.removeprefix("bench_") in names]
    if not wanted:
        print(f"no benchmark matches {names}; known: {[m[6:] for m in modules]}", file=sys.stderr)
        return 2
    for name in wanted:
        print(f"\n== {name.removeprefix('bench_')} ==", flush=True)
        module = importlib.import_module(f"bench.{name}")
        print_table(module.run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

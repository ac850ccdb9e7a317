"""`make bench`: run every benchmark module that exists, in order, skipping missing ones.

Each module has a `main()` (optionally taking argv); a non-zero int return is a failure. Add new benchmarks to MODULES.
"""

from __future__ import annotations

import importlib
import sys
import time

MODULES = [
    "bench.ingest_speed",
    "bench.collect_speed",
    "bench.watch_load",
    "bench.bench_analyzer",
    "bench.xquad",
    "bench.dev_queries",
    "bench.search_speed",
    "bench.web_speed",
    "bench.load",
    "bench.semantic",
    "bench.completeness",
    "bench.story_pairs",
    "bench.backends",
]


def main(argv: list[str] | None = None) -> int:
    failed = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                print(f"== {name}: not present, skipped")
                continue
            raise
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            code = module.main([]) if _takes_argv(module.main) else module.main()
        except SystemExit as e:
            code = e.code
        code = code if isinstance(code, int) else 0   # some mains return their figures instead
        if code:
            failed.append(name)
        print(f"   ({time.perf_counter() - started:.0f} s, exit {code})", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def _takes_argv(fn) -> bool:
    import inspect

    return bool(inspect.signature(fn).parameters)


if __name__ == "__main__":
    sys.exit(main())

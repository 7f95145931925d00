"""The project's whole check: ruff, mypy --strict, import-linter layer contracts, then pytest.

Run as ``uv run python scripts/check.py`` (the README's test command). Extra arguments go to
pytest. Exits non-zero if any step fails, including pytest collecting no tests (exit 5).
Sets ``OSTIARY_TEST_REQUIRE_BROWSER=1`` unless given: the Chromium and Node.js client tests
then fail, rather than skip, where their tools are missing. Where ``PYTHONDONTWRITEBYTECODE``
is set, pytest runs without it and keeps its bytecode under the temporary directory instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STATIC = [
    ["ruff", "check", "src", "tests", "bench", "scripts"],
    ["ruff", "format", "--check", "src", "tests", "bench", "scripts"],
    ["mypy", "src"],
    ["lint-imports"],
]


def _step(command: list[str]) -> int:
    started = time.monotonic()
    print(f"==> {' '.join(command)}", flush=True)
    code = subprocess.call(command)  # noqa: S603 (fixed argument lists)
    print(f"<== {command[0]}: exit {code} in {time.monotonic() - started:.1f}s", flush=True)
    return code


def main() -> int:
    failed = [c[0] for c in STATIC if _step(c) != 0]
    # The browser (Chromium) and Node.js client tests fail rather than skip when their tools
    # are missing, so this check never passes without them; =0 skips them on purpose.
    os.environ.setdefault("OSTIARY_TEST_REQUIRE_BROWSER", "1")
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        # Each pytest worker would compile the whole import graph (about 3,800 modules) and
        # re-run pytest's assertion rewriting, 20-30 s of CPU per worker on every run: cache
        # the bytecode outside the repository and the virtualenv instead, where the e2e
        # servers' subprocesses keep theirs (tests/e2e/harness.py, base_env).
        os.environ.setdefault(
            "PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "ostiary-e2e-pyc")
        )
    workers = os.environ.get("OSTIARY_TEST_WORKERS", "2")
    # The slowest tests named in every run: the suite must stay under 15 minutes on CI.
    pytest = [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        workers,
        "--dist",
        "loadfile",
        "--durations=20",
        *sys.argv[1:],
    ]
    code = _step(pytest)
    if code == 5:
        print("pytest collected no tests: that is a failure here", flush=True)
    if code != 0:
        failed.append("pytest")
    if failed:
        print(f"FAILED: {', '.join(failed)}", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Summarize a py-spy profile in collapsed-stack form (``py-spy record -f raw``): the share of
samples each function is on the stack (inclusive) and on top (self), as a Markdown table.

    uv run python bench/profile_summary.py /tmp/prof/verify.txt [--top 30] [--match ostiary]

Idle samples (the event loop waiting in ``select``/``epoll``) are counted apart, so shares are
of the samples where the server thread was working.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^)]*?)(?::\d+)?\)$")
_IDLE = ("select (selectors.py", "poll (selectors.py", "_run_once (asyncio/base_events.py")


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="", help="only functions whose file contains this")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    working = idle = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[-1].startswith(_IDLE[:2]) or (len(frames) <= 6 and _IDLE[2] in frames[-1]):
            idle += count
            continue
        working += count
        for name in {_name(f) for f in frames}:
            inclusive[name] += count
        own[_name(frames[-1])] += count
    total = max(working, 1)
    print(f"{working} working samples, {idle} idle ({idle / max(working + idle, 1):.0%})\n")
    print("| function | inclusive | self |")
    print("|---|---:|---:|")
    shown = 0
    for name, count in inclusive.most_common():
        if args.match and args.match not in name:
            continue
        print(f"| `{name}` | {count / total:.1%} | {own[name] / total:.1%} |")
        shown += 1
        if shown >= args.top:
            break


if __name__ == "__main__":
    main()

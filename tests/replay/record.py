"""Record the replay corpus's responses again (after an intended change; review the diff):

python -m tests.replay.record [suite ...]     # every suite when none is named
"""

from __future__ import annotations

import sys
import time

from tests.replay.corpus import SUITES, Replayer, answers, write_record


def main(argv: list[str]) -> int:
    suites = argv or list(SUITES)
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        print(f"unknown suite(s) {unknown}; known: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    replayer = Replayer()
    for suite in suites:
        started = time.monotonic()
        found = answers(suite, replayer)
        write_record(suite, found)
        print(f"{suite}: {len(found)} responses recorded ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

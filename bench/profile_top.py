"""Summarise py-spy's collapsed stacks: where the service's samples go, by function (self and total).

.venv/bin/python -m bench.profile_top FILE [--top 30] [--match service/]
"""

from __future__ import annotations

import argparse
from collections import Counter


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--match", default="", help="only frames whose text contains this")
    args = p.parse_args()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    with open(args.file) as lines:
        stacks = [line.rstrip().rpartition(" ") for line in lines]
    for stack, _, count in stacks:
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for f in set(frames):
            if args.match in f:
                total[f] += n
    print(f"{samples} samples")
    print("-- self --")
    for f, n in own.most_common(args.top):
        print(f"{100 * n / samples:5.1f}%  {f}")
    print("-- total (inclusive) --")
    for f, n in total.most_common(args.top):
        print(f"{100 * n / samples:5.1f}%  {f}")


if __name__ == "__main__":
    main()

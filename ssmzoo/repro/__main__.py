"""``python -m ssmzoo.repro GRID [--out DIR] [--device cpu|cuda]``: run a reproduction grid."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssmzoo.repro",
                                     description="Run a reproduction grid (measurement cells "
                                     "included) and write its reports.")
    parser.add_argument("grid", help="a grid file or a built-in grid name")
    parser.add_argument("--out", default=None, help="output directory (default runs/NAME)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    parser.add_argument("--retry-failed", action="store_true", help="rerun failed cells")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from ssmzoo.errors import SSMZooError
    from ssmzoo.repro.runner import run

    try:
        out = run(args.grid, out=args.out, device=args.device, retry_failed=args.retry_failed,
                  progress=not args.no_progress)
    except SSMZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"results in {out} (report.md, report.csv, repro.md where the grid has one)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

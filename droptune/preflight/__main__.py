"""``python -m droptune.preflight wait STUDY_FILE``: wait until ``droptune tune`` has prepared the study.

For job scripts (docs/slurm.sh, docs/k8s-job.yaml): exit 0 when the study is ready, 1 after
``--timeout`` seconds, 2 on a bad study file or flag.
"""

from __future__ import annotations

import argparse
import logging
import sys

from droptune.config import load_config
from droptune.exceptions import DroptuneError
from droptune.preflight._ready import wait_until_ready


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, wait, return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m droptune.preflight", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    wait = sub.add_parser("wait", help="wait until the study is prepared by `droptune tune`")
    wait.add_argument("study_file")
    wait.add_argument("--storage", help="Optuna storage URL (default: the study file's)")
    wait.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)")
    wait.add_argument("--poll", type=float, default=5.0, help="look this often, in seconds (default 5)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        spec = load_config(args.study_file, {"storage": args.storage})
    except DroptuneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if wait_until_ready(spec, timeout=args.timeout, poll=args.poll):
        return 0
    print(f"study {spec.name!r} not prepared in {spec.storage} after {args.timeout:g} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

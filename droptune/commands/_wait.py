"""``droptune wait STUDY_FILE``: wait until ``droptune tune`` has prepared the study.

For job scripts (docs/slurm.sh, docs/k8s-job.yaml) whose other tasks start as workers: exit 0
once the study is ready to join, 1 after ``--timeout`` seconds, 2 on a bad study file or flag.
"""

from __future__ import annotations

import argparse

from droptune.commands._base import command, err, say
from droptune.config import load_config


def add_wait_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_file", help="YAML study file")
    parser.add_argument("--storage", help="Optuna storage URL (default: the study file's)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)")
    parser.add_argument("--poll", type=float, default=5.0, help="look this often, in seconds (default 5)")


@command("wait", add_wait_arguments, help="wait until `droptune tune` has prepared the study (for job scripts)")
def wait_command(args: argparse.Namespace) -> int:
    spec = load_config(args.study_file, {"storage": args.storage})
    from droptune.preflight import wait_until_ready

    if wait_until_ready(spec, timeout=args.timeout, poll=args.poll):
        return 0
    say(err, f"study {spec.name!r} not prepared in {spec.storage} after {args.timeout:g} s")
    return 1

"""``droptune report``: one self-contained HTML page with the answer, how sure it is, and plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from droptune.commands._base import add_studies_arguments, command, err, say
from droptune.commands._inspect import site_report
from droptune.exceptions import DroptuneError, StudyError

if TYPE_CHECKING:
    import optuna


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    add_studies_arguments(parser)
    parser.add_argument(
        "-o", "--output", default="report.html", metavar="FILE", help="the HTML file to write (default report.html)"
    )


@command("report", add_report_arguments, help="write an HTML report of finished studies (opens offline)")
def report_command(args: argparse.Namespace) -> int:
    from droptune.report import write_report
    from droptune.stores import open_study

    studies = [open_study(ref, storage=args.storage) for ref in args.studies]
    for study in studies:  # a report of nothing is megabytes of empty plots: say so instead
        _require_complete(study)
    sites = {}
    for ref, study in zip(args.studies, studies):
        if Path(ref).is_file():  # a study file can build its model: the sites table says what inspect says
            try:
                sites[study.study_name] = site_report(ref).as_dict()
            except DroptuneError as error:
                say(err, f"sites of {ref} left out of the report: {error}")
    path = write_report(studies, args.output, top=args.top, sites=sites)
    size = path.stat().st_size / 1e6
    say(err, f"wrote {path} ({size:.1f} MB, opens offline in any browser)")
    return 0


def _require_complete(study: optuna.Study) -> None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        states = ", ".join(f"{sum(t.state == s for t in trials)} {s.name.lower()}" for s in TrialState) if trials else "none"
        raise StudyError(
            f"study {study.study_name!r} has no complete trial to report on (trials: {states}); "
            "run `droptune tune` on it until at least one trial completes."
        )

"""``droptune recommend``: the recommended rate per layer type, from one study or pooled."""

from __future__ import annotations

import argparse
import shlex
import sys

import optuna
from rich.console import Console

from droptune.commands._base import add_studies_arguments, command, err, out
from droptune.exceptions import StudyError
from droptune.recommend import (
    Recommendation,
    SiteRecommendation,
    basis,
    best_trial,
    caveats,
    compute,
    dump_recommendations,
    open_study,
    recommend,
    recommendation_table,
    which_figure,
)
from droptune.recommend._confirmed import confirmed_note
from droptune.recommend._table import FORMATS


def add_recommend_arguments(parser: argparse.ArgumentParser) -> None:
    add_studies_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument(
        "--by", choices=("type", "site"), default="type", help="one recommendation per layer type or per site"
    )


@command("recommend", add_recommend_arguments, help="recommend a dropout rate per layer type from finished studies")
def recommend_command(args: argparse.Namespace) -> int:
    studies = [open_study(ref, storage=args.storage) for ref in args.studies]
    items = recommend(studies, top=args.top, by=args.by)
    if args.format == "table":
        names = ", ".join(s.study_name for s in studies)
        what = "layer type" if args.by == "type" else "site"
        title = f"recommended dropout rate per {what}: the median {basis(studies, top=args.top)} ({names})"
        out.print(recommendation_table(items, title=title))
    else:
        sys.stdout.write(dump_recommendations(items, args.format))
        sys.stdout.flush()
    # With JSON or YAML on stdout, the words go to stderr so the data stays parseable.
    ref = shlex.quote(args.studies[0]) if len(args.studies) == 1 else "STUDY"
    print_caveats(studies, items, top=args.top, console=out if args.format == "table" else err, study_ref=ref)
    return 0


def print_caveats(
    studies: list[optuna.Study],
    items: list[Recommendation] | list[SiteRecommendation],
    *,
    top: float,
    console: Console,
    study_ref: str = "STUDY",
) -> None:
    """The warnings on a recommendation, then which column ``droptune export`` writes."""
    for note in filter(None, map(confirmed_note, studies)):  # which configuration is kept, and its spread
        console.print(note, markup=False, highlight=False)
    for caveat in caveats(studies, top=top):
        console.print(f"warning: {caveat}", markup=False, highlight=False)
    by_type = [i for i in items if isinstance(i, Recommendation)]
    if by_type:
        console.print(which_figure(by_type, study_ref), markup=False, highlight=False)


def print_recommendation(study: optuna.Study, *, top: float = 0.2, study_ref: str = "STUDY") -> None:
    """The end of ``droptune tune``: both answers in one table, or why there is no recommendation yet.

    One row per layer type holds the best trial's rate (what ``droptune export`` writes) and
    the recommended one (``--recommended``); one sentence says which is which. With too few
    trials to recommend from, the best trial's rates per site are shown instead.

    Args:
        study: The study.
        top: Fraction of complete trials, best first, the recommendation is drawn from.
        study_ref: How the printed commands name the study (its file, or its name).
    """
    try:
        items, _ = compute(study, top=top)  # its notes were logged with the MLflow report
    except StudyError as error:
        from droptune.commands._progress import best_rates_table

        try:
            out.print(best_rates_table(best_trial(study)))
        except StudyError:  # no complete trial: the summary above said so
            pass
        out.print(f"no recommendation yet: {error}", markup=False, highlight=False)
        return
    best = best_trial(study)
    title = f"dropout rate per layer type: best = trial {best.number}; rate = the median {basis([study], top=top)}"
    out.print(recommendation_table(items, title=title))
    print_caveats([study], items, top=top, console=out, study_ref=study_ref)
    out.print(
        "the whole story (plots, every trial, which trials overfit): report.html on the study's MLflow parent "
        "run, or `droptune report STUDY_FILE -o report.html`",
        markup=False,
        highlight=False,
    )

"""``droptune recommend``: the recommended rate per layer type, from one study or pooled."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from droptune.commands._base import add_studies_arguments, command, err, out
from droptune.exceptions import StudyError

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from droptune.recommend import Recommendation, SiteRecommendation

# droptune.recommend._table.FORMATS, repeated so that `--help` imports no Optuna (a test checks).
FORMATS = ("table", "json", "yaml")


def add_recommend_arguments(parser: argparse.ArgumentParser) -> None:
    add_studies_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument(
        "--by", choices=("type", "site"), default="type", help="one recommendation per layer type or per site"
    )
    parser.add_argument(
        "--for-model", metavar="STUDY_FILE|CLASS_PATH",
        help="say whether the per-type rates carry to this model (by its size against the studied model's)",
    )


@command("recommend", add_recommend_arguments, help="recommend a dropout rate per layer type from finished studies")
def recommend_command(args: argparse.Namespace) -> int:
    from droptune.recommend import basis, dump_recommendations, open_study, recommend, recommendation_table

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
    words = out if args.format == "table" else err
    print_caveats(studies, items, top=args.top, console=words)
    if args.for_model:
        from droptune.commands._inspect import build_target
        from droptune.recommend._transfer import transfer_note

        target = build_target(args.for_model)[0]
        _, text = transfer_note(studies, sum(p.numel() for p in target.parameters()))
        words.print(text, markup=False, highlight=False)
    return 0


def print_caveats(
    studies: list[optuna.Study],
    items: list[Recommendation] | list[SiteRecommendation],
    *,
    top: float,
    console: Console,
) -> None:
    """The warnings on a recommendation, then which figure goes in training code."""
    from droptune.recommend import Recommendation, caveats, which_figure
    from droptune.recommend._confirmed import confirmed_note

    for note in filter(None, map(confirmed_note, studies)):  # which configuration is kept, and its spread
        console.print(note, markup=False, highlight=False)
    for caveat in caveats(studies, top=top):
        console.print(f"warning: {caveat}", markup=False, highlight=False)
    by_type = [i for i in items if isinstance(i, Recommendation)]
    if by_type:
        console.print(which_figure(by_type), markup=False, highlight=False)


def print_recommendation(study: optuna.Study, *, top: float = 0.2) -> None:
    """Print a study's recommendation table, or why there is none yet (end of ``droptune tune``)."""
    from droptune.recommend import basis, compute, recommendation_table

    try:
        items, _ = compute(study, top=top)  # its notes were logged with the MLflow report
    except StudyError as error:
        out.print(f"no recommendation yet: {error}", markup=False, highlight=False)
        return
    title = f"recommended dropout rate per layer type: the median {basis([study], top=top)}"
    out.print(recommendation_table(items, title=title))
    print_caveats([study], items, top=top, console=out)
    out.print(
        "the whole story (plots, every trial, which trials overfit): report.html on the study's MLflow parent "
        "run, or `droptune report STUDY_FILE -o report.html`",
        markup=False,
        highlight=False,
    )

"""``droptune recommend``: the recommended rate per layer type, from one study or pooled."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING

from droptune.commands._base import add_studies_arguments, command, err, out, say
from droptune.exceptions import StudyError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial
    from rich.console import Console
    from rich.table import Table

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
    from droptune.recommend import basis, dump_recommendations, recommend, recommendation_table
    from droptune.stores import open_study

    studies = [open_study(ref, storage=args.storage) for ref in args.studies]
    items = recommend(studies, top=args.top, by=args.by)
    if args.format == "table":
        names = ", ".join(s.study_name for s in studies)
        what = "layer type" if args.by == "type" else "site"
        title = f"recommended dropout rate per {what}: the median {basis(studies, top=args.top)} ({names})"
        out.print(recommendation_table(items, title=title), crop=False)  # too narrow a terminal wraps a row, losing nothing
    else:
        sys.stdout.write(dump_recommendations(items, args.format))
        sys.stdout.flush()
    # With JSON or YAML on stdout, the words go to stderr so the data stays parseable.
    words = out if args.format == "table" else err
    ref = shlex.quote(args.studies[0]) if len(args.studies) == 1 else "STUDY"
    print_caveats(studies, items, top=args.top, console=words, study_ref=ref)
    if args.for_model:
        from droptune.commands._inspect import build_target
        from droptune.recommend._transfer import transfer_note

        target = build_target(args.for_model)[0]
        text = transfer_note(studies, sum(p.numel() for p in target.parameters()))
        say(words, text)
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
    from droptune.recommend import Recommendation, caveats, which_figure
    from droptune.recommend._confirmed import confirmed_note

    for note in filter(None, map(confirmed_note, studies)):  # which configuration is kept, and its spread
        say(console, note)
    for caveat in caveats(studies, top=top):
        say(console, f"warning: {caveat}")
    by_type = [i for i in items if isinstance(i, Recommendation)]
    if by_type:
        say(console, which_figure(by_type, study_ref))


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
    from droptune.recommend import basis, compute, recommendation_table
    from droptune.record import best_trial

    try:
        items, _ = compute(study, top=top)  # its notes were logged with the MLflow report
    except StudyError as error:
        try:
            out.print(best_rates_table(best_trial(study)), crop=False)  # too narrow a terminal wraps a row, losing nothing
        except StudyError:  # no complete trial: the summary above said so
            pass
        say(out, f"no recommendation yet: {error}")
        return
    best = best_trial(study)
    title = f"dropout rate per layer type: best = trial {best.number}; rate = the median {basis([study], top=top)}"
    out.print(recommendation_table(items, title=title), crop=False)  # too narrow a terminal wraps a row, losing nothing
    print_caveats([study], items, top=top, console=out, study_ref=study_ref)
    say(out, "the whole story (plots, every trial, which trials overfit): report.html on the study's MLflow parent "
        "run, or `droptune report STUDY_FILE -o report.html`")


def best_rates_table(trial: FrozenTrial) -> Table:
    """The trial's rates, one row per layer type and rate: sites tied to one rate share a row.

    Under granularity ``type`` a type's sites hold one rate, so a row per site only repeats
    it; sites of one type with different rates (granularity ``site``, a kept schedule) keep
    a row each.

    Example:
        >>> import optuna
        >>> from droptune import record
        >>> attrs = record.start_attrs({"a": 0.2, "b": 0.2, "c": 0.1}, {"a": "dense", "b": "dense", "c": "input"})
        >>> study = optuna.create_study()
        >>> study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs=attrs))
        >>> [row for row in _rate_rows(study.trials[0])]
        [('a, b', 'dense', '0.200'), ('c', 'input', '0.100')]
    """
    from rich.table import Table
    from rich.text import Text

    table = Table("sites", "layer type", "rate", title=Text(f"best rates (trial {trial.number})"), title_justify="left")
    for sites, layer_type, rate in _rate_rows(trial):
        table.add_row(Text(sites), Text(layer_type), rate)
    return table


def _rate_rows(trial: FrozenTrial) -> list[tuple[str, str, str]]:
    from droptune.record import site_rates, site_types

    types = site_types(trial)
    groups: dict[tuple[str, str], list[str]] = {}
    for site, rate in site_rates(trial).items():
        groups.setdefault((types.get(site, "?"), f"{rate:.3f}"), []).append(site)
    return [(", ".join(sites), layer_type, rate) for (layer_type, rate), sites in groups.items()]

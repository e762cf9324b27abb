"""Export a study's dropout rates, to apply them to a freshly built model in training code.

Two answers can be exported (``docs/export-and-confirm.md``):

- :func:`export_best`, the best trial's rate per site (``droptune export``, ``--best``): a
  configuration trained and measured as a whole.
- :func:`export_recommended`, the recommended rate of each layer type (the median over the
  top trials, what ``droptune recommend`` prints) set on every site of that type
  (``droptune export --recommended``): the steadier estimate.

Both configs (YAML or JSON, never a pickle) hold the study name, ``rates: {site name: rate}``
for every site of the model and ``layer_types: {site name: type}``, so that
``droptune.apply_rates(model, "best.yaml")`` reads either back. The ``python`` format is a
snippet doing the same with the rates written inline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import optuna
import yaml

from droptune._io import atomic_write_text
from droptune.exceptions import ConfigError
from droptune.recommend import basis, compute
from droptune.record import (
    UNTUNED_ATTR,
    best_trial,
    confirmed_finalists,
    find_trial,
    model_rates,
    model_types,
    site_rates,
)

__all__ = [
    "EXPORT_FORMATS",
    "describe",
    "export_best",
    "export_recommended",
    "format_from_path",
    "render_export",
    "write_export",
]

EXPORT_FORMATS = ("yaml", "json", "python")
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".py": "python"}


def export_best(study: optuna.Study, *, trial: int | None = None) -> dict[str, Any]:
    """The config of the study's best trial (or of trial number ``trial``).

    Args:
        study: A droptune study.
        trial: Number of a complete trial to export instead of the best one.

    Returns:
        ``{"study", "trial", "value", "direction", "rates", "layer_types"}``: plain data
        ready for YAML/JSON. In a confirmed study (``droptune confirm``) the best trial is
        the finalist with the best mean over fresh seeds, and ``confirmed`` holds its
        ``n``, ``value_mean``, ``value_sd``, ``gap_mean`` and ``gap_sd``. ``untuned`` lists
        the sites whose dropout never ran on the study's example input (they keep the
        model's own rate in ``rates``: nothing tuned them), when there are any.

    Raises:
        StudyError: If the study has no complete trial, or ``trial`` is not a complete
            trial of it (the message lists those that are).
    """
    chosen = best_trial(study) if trial is None else find_trial(study, trial)
    config = {
        "study": study.study_name,
        "trial": chosen.number,
        "value": float(chosen.value),  # type: ignore[arg-type]
        "direction": study.direction.name.lower(),
        # A study that tuned only some sites (include/exclude) records the whole model's
        # rates too: an exported config is complete, so apply_rates(model, file) can be strict.
        "rates": model_rates(chosen),
        "layer_types": model_types(chosen),
    }
    for finalist in confirmed_finalists(study.user_attrs):
        if finalist["trial"] == chosen.number:  # its value is one seed's; this is what to expect
            config["confirmed"] = {k: finalist.get(k) for k in ("n", "value_mean", "value_sd", "gap_mean", "gap_sd")}
    untuned = study.user_attrs.get(UNTUNED_ATTR)
    if untuned:
        config["untuned"] = list(untuned)
    return config


def export_recommended(study: optuna.Study, *, top: float = 0.2) -> dict[str, Any]:
    """The recommended rate of each layer type, set on every tuned site of that type.

    The recommendation is :func:`droptune.recommend.recommend`'s: per layer type, the median
    rate over the top ``top`` fraction of complete trials (at least 3). Sites the study did
    not tune (``include``/``exclude``) keep the rate they had, as :func:`export_best` does.

    Args:
        study: A droptune study with at least 3 complete trials.
        top: Fraction of the complete trials, best first, the recommendation is drawn from.

    Returns:
        ``{"study", "source": "recommended", "basis", "direction", "recommended", "rates",
        "layer_types"}``: ``recommended`` is ``{layer type: rate}``; ``rates`` and
        ``layer_types`` cover every site of the model, as in :func:`export_best`.

    Raises:
        StudyError: If the study has too few complete trials to recommend from.
        ConfigError: If ``top`` is not in (0, 1].
    """
    items, _ = compute(study, top=top, by="type")
    by_type = {rec.layer_type: rec.recommended for rec in items}
    best = best_trial(study)  # its record holds every site of the model, tuned or not
    tuned = site_rates(best)
    types = model_types(best)
    rates = {
        site: by_type[types[site]] if site in tuned and types.get(site) in by_type else rate
        for site, rate in model_rates(best).items()
    }
    return {
        "study": study.study_name,
        "source": "recommended",
        "basis": f"the median rate per layer type {basis([study], top=top)}",
        "direction": study.direction.name.lower(),
        "recommended": by_type,
        "rates": rates,
        "layer_types": types,
    }


def describe(config: dict[str, Any]) -> str:
    """What an exported config holds, in a few words: ``trial 3`` or ``the recommended rates``.

    Example:
        >>> describe({"trial": 3}), describe({"source": "recommended"})
        ('trial 3', 'the recommended rate per layer type')
    """
    if config.get("source") == "recommended":
        return "the recommended rate per layer type"
    return f"trial {config['trial']}"


def render_export(config: dict[str, Any], fmt: str = "yaml") -> str:
    """The config as ``yaml``, ``json`` or a ``python`` snippet applying it to ``model``.

    Raises:
        ConfigError: If ``fmt`` is not one of :data:`EXPORT_FORMATS`.
    """
    if fmt == "yaml":
        header = (
            f"# droptune export of study {config['study']!r}, {describe(config)}.\n"
            "# In training code: droptune.apply_rates(model, 'THIS_FILE.yaml')\n"
        )
        return header + yaml.safe_dump(config, sort_keys=False)
    if fmt == "json":
        return json.dumps(config, indent=2) + "\n"
    if fmt == "python":
        return _snippet(config)
    raise ConfigError(f"export format must be one of {', '.join(EXPORT_FORMATS)}; got {fmt!r}.")


def format_from_path(path: str | os.PathLike[str], default: str = "yaml") -> str:
    """The export format a file name implies (``.json`` -> json, ``.py`` -> python)."""
    return SUFFIXES.get(Path(path).suffix.lower(), default)


def write_export(config: dict[str, Any], path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write the config to ``path`` in ``fmt`` (by default, the one its suffix implies).

    The file is written whole or not at all (a temporary file beside it, then a rename):
    a full disk or a crash leaves no truncated export and keeps an older one intact.

    Raises:
        ConfigError: If the path cannot be written (a parent is a file, the disk is full,
            the folder is read-only...), saying why and what to do.
    """
    path = Path(path)
    text = render_export(config, fmt or format_from_path(path))
    return atomic_write_text(path, text, what="export")


def _snippet(config: dict[str, Any]) -> str:
    types = config.get("layer_types", {})
    what = describe(config)
    if "value" in config:
        what += f" (value {config['value']:.6g}, {config['direction']})"
    lines = [
        f"# droptune export of study {config['study']!r}, {what}.",
        "# Paste after the model is built; strict=True raises if a site does not match.",
        "import droptune",
        "",
        "droptune.apply_rates(",
        "    model,",
        "    {",
    ]
    for name, rate in config["rates"].items():
        lines.append(f"        {json.dumps(name)}: {float(rate)!r},  # {types.get(name, '?')}")
    lines += ["    },", "    strict=True,", ")", ""]
    return "\n".join(lines)

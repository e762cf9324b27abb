"""Whisper built with dropout 0.1 and activation_dropout 0.0: the zero knob is tuned, not frozen by its tie."""

from __future__ import annotations

import optuna

from droptune import discover
from droptune.inspect import inspect_model
from droptune.space import SearchSpace

from ._hf_more import MORE


def test_whisper_activation_dropout_at_zero_is_untied_and_tuned():
    model = MORE["whisper"].build("eager")
    example = MORE["whisper"].example()
    sites = discover(model, example)
    space = SearchSpace(granularity="type")
    variables = space.variables(sites)
    activation = [s.name for s in sites if s.name.endswith("activation_dropout")]
    assert len(activation) == 4 and {variables[n] for n in activation} == {"hidden@0"}
    assert variables["model.encoder.layers.0.dropout"] == "hidden"
    rates = space.suggest(optuna.trial.FixedTrial({**space.prior_params(sites), "hidden@0": 0.2}), sites)
    assert {rates[n] for n in activation} == {0.2}
    report = inspect_model(model, example, space=space)
    assert {r.group for r in report.rows if r.name in activation} == {"hidden@0"}
    assert any("hidden@0" in line and "activation_dropout" in line for line in report.advice)

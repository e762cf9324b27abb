"""droptune inspect: the site table of a study file's model or of a class path."""

from __future__ import annotations

import json

from droptune.cli import main


def test_inspect_a_study_file_prints_every_site_with_type_liveness_and_group(capsys):
    assert main(["inspect", "studies/digits_transformer.yaml"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert len(lines) == 8
    assert lines["blocks.0.attn.dropout"].split()[1:6] == ["MultiheadAttention", "attention", "0.1", "yes", "attention"]
    assert "inside a transformer sub-layer's residual branch" in lines["blocks.1.mlp.4"]
    # the built schedule: block 0's stochastic depth is 0, so it keeps 0 x the residual rate
    assert "residual x0.00" in lines["blocks.0.drop_path.drop_prob"]


def test_inspect_json_is_the_data_the_engine_logs(capsys):
    assert main(["inspect", "studies/digits_cnn.yaml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["traced"] is True
    assert {row["layer_type"] for row in data["sites"]} == {"spatial", "dense"}
    assert set(data["sites"][0]) == {"name", "kind", "layer_type", "why", "rate", "live", "group", "share"}


def test_inspect_a_class_path_without_example_input_says_so(capsys):
    assert main(["inspect", "droptune.models.MLP"]) == 0
    captured = capsys.readouterr()
    assert "input_dropout" in captured.out
    assert "no example input" in captured.err


def test_inspect_a_class_that_needs_arguments_is_one_clear_error(capsys):
    assert main(["inspect", "torch.nn.Linear"]) == 2
    assert "cannot be built without arguments" in capsys.readouterr().err

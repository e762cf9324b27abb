"""``recommend --for-model`` and the report say how far a study's rates carry to another model size."""

from __future__ import annotations

import textwrap

from droptune.cli import main
from droptune.report import write_report
from droptune.stores import open_study

STUDY = """
name: small
model: {{class_path: droptune.testing.TinyModule, init_args: {{hidden: {hidden}}}}}
data: {{class_path: droptune.testing.TinyDataModule}}
search: {{n_trials: 3, sampler: random, pruner: none}}
trainer: {{max_epochs: 1, early_stopping_patience: null, accelerator: cpu}}
tracking_uri: none
"""


def _file(folder, name, hidden):
    path = folder / name
    path.write_text(textwrap.dedent(STUDY.format(hidden=hidden)))
    return path


def test_recommend_for_a_model_4x_bigger_says_the_evidence_does_not_support_it(in_tmp, capsys):
    small = _file(in_tmp, "small.yaml", 16)
    assert main(["tune", str(small)]) == 0
    capsys.readouterr()
    assert main(["recommend", str(small), "--for-model", str(_file(in_tmp, "big.yaml", 128))]) == 0
    said = capsys.readouterr().out
    assert "Unsupported by the evidence" in said and "Tune the target model directly" in said
    assert main(["recommend", str(small), "--for-model", str(_file(in_tmp, "same.yaml", 20))]) == 0
    assert "Supported: the target model has" in capsys.readouterr().out


def test_the_report_says_what_model_size_the_rates_are_evidence_for(in_tmp):
    small = _file(in_tmp, "small.yaml", 16)
    assert main(["tune", str(small)]) == 0
    study = open_study(str(small))
    n_params = study.user_attrs["model_size"]["n_params"]
    write_report([study], in_tmp / "report.html")
    html = (in_tmp / "report.html").read_text()
    assert "For another model" in html and f"a model of {n_params:,} parameters" in html

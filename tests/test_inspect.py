"""inspect_model: the site table, the unreachable calls and the placement advice of the seed notes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from droptune.inspect import inspect_model
from droptune.space import SearchSpace


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.in_drop = nn.Dropout(0.5)  # a high input rate
        self.fc = nn.Linear(4, 8)
        self.pre_bn = nn.Dropout(0.2)  # right before a BatchNorm
        self.bn = nn.BatchNorm1d(8)
        self.unused = nn.Dropout(0.3)  # never called
        self.head = nn.Linear(8, 3)
        self.out_drop = nn.Dropout(0.1)  # on the logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.pre_bn(self.fc(self.in_drop(x))))
        x = F.dropout(x, 0.25, self.training)  # a literal rate
        return self.out_drop(self.head(x))


def test_rows_give_type_reason_liveness_and_group():
    report = inspect_model(Net(), torch.randn(4, 4), space=SearchSpace(granularity="site"))
    rows = {r.name: r for r in report.rows}
    assert list(rows) == ["in_drop", "pre_bn", "unused", "out_drop"]
    assert (rows["in_drop"].layer_type, rows["in_drop"].live, rows["in_drop"].group) == ("input", True, "in_drop")
    assert "no layer with parameters before it" in rows["in_drop"].why
    assert (rows["unused"].live, rows["unused"].group) == (False, "")  # listed, not tuned


def test_advice_from_the_seed_notes():
    advice = "\n".join(inspect_model(Net(), torch.randn(4, 4)).advice)
    assert "pre_bn: dropout right before BatchNorm1d" in advice
    assert "out_drop: dropout after the last layer with parameters drops the model's output" in advice
    assert "in_drop: input dropout at 0.5 is high" in advice
    assert "unused: never runs on the example input" in advice
    assert "dropout(rate 0.25) in <root> (Net): a literal rate" in advice
    assert "fc" not in [line.split(":")[0] for line in advice.splitlines()]


def test_the_report_is_plain_data_and_leaves_the_model_alone():
    net = Net().eval()
    report = inspect_model(net, torch.randn(4, 4))
    data = report.as_dict()
    assert data["unreachable"] == [{"module_path": "", "kind": "Net", "function": "dropout", "rate": 0.25, "config_keys": ()}]
    assert [row["name"] for row in data["sites"]] == ["in_drop", "pre_bn", "unused", "out_drop"]
    assert not net.training and float(net.bn.running_mean.abs().sum()) == 0.0


def test_without_an_example_input_only_structure_is_known():
    report = inspect_model(Net())
    assert not report.traced and report.unreachable == []
    assert all(r.live for r in report.rows)


def test_the_text_table_lists_sites_then_unreachable_calls_then_warnings():
    lines = inspect_model(Net(), torch.randn(4, 4)).to_text().splitlines()
    assert lines[0] == "4 dropout sites"
    assert lines[1].split() == ["site", "kind", "type", "rate", "live", "tied", "to", "why"]
    assert lines[4].split()[:6] == ["unused", "Dropout", "dense", "0.3", "no", "-"]
    assert lines[6] == "unreachable: dropout(rate 0.25) in <root> (Net)"
    assert all(line.startswith("warning: ") for line in lines[7:]) and len(lines) > 7

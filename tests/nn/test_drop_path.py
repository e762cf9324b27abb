"""DropPath: a whole sample's residual branch is dropped; inverted scaling."""

from __future__ import annotations

import math

import pytest
import torch

from droptune import apply_rates, discover
from droptune.nn import DropPath

BAD_P = [-0.1, 1.0, 1.5, math.nan, math.inf, True, "0.5", None]


@pytest.mark.parametrize("p", BAD_P, ids=repr)
def test_drop_prob_outside_0_1_is_a_value_error(p):
    with pytest.raises(ValueError, match=r"drop_prob must be a drop probability in \[0, 1\); got "):
        DropPath(p)


@pytest.mark.parametrize("p", [0, 0.0, 0.2, 0.999])
def test_valid_drop_prob_is_stored_as_a_float(p):
    drop = DropPath(p)
    assert drop.drop_prob == float(p) and isinstance(drop.drop_prob, float)
    assert repr(drop) == f"DropPath(drop_prob={float(p)})"


@pytest.mark.parametrize("shape", [(16, 5), (8, 3, 4, 4)])
def test_eval_is_the_identity_with_no_test_time_scaling(shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    assert torch.equal(DropPath(0.5).eval()(x), x)


def test_zero_drop_prob_is_the_identity_in_training():
    x = torch.randn(4, 3)
    assert torch.equal(DropPath(0.0).train()(x), x)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("shape", [(3,), (5, 4), (2, 3, 3)], ids=["1d", "2d", "3d"])
def test_each_sample_is_all_zero_or_all_scaled(p, shape):
    torch.manual_seed(1)
    batch = 256
    y = DropPath(p).train()(torch.ones(batch, *shape))
    per_sample = y.reshape(batch, -1)
    first = per_sample[:, :1]
    assert torch.equal(per_sample, first.expand_as(per_sample))  # one decision per sample
    scale = torch.tensor(1.0) / (1 - p)  # in float32, as the module computes it
    assert set(first.flatten().tolist()) == {0.0, scale.item()}


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_drop_fraction_is_close_to_p(p):
    torch.manual_seed(2)
    n = 20_000
    y = DropPath(p).train()(torch.ones(n, 3))
    dropped = (y[:, 0] == 0).float().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_mean_is_preserved_in_training(p):
    """E[mask / keep] = 1; for n samples of value 1 the mean's std is sqrt(p / ((1 - p) n))."""
    torch.manual_seed(3)
    n = 20_000
    y = DropPath(p).train()(torch.ones(n, 4))
    assert abs(y.mean().item() - 1.0) < 5 * math.sqrt(p / ((1 - p) * n))


def test_expected_value_equals_the_input_for_any_input():
    torch.manual_seed(4)
    x = torch.randn(1, 6)
    p, n = 0.3, 40_000
    y = DropPath(p).train()(x.expand(n, 6))
    std_of_mean = x.abs() * math.sqrt(p / ((1 - p) * n))
    assert ((y.mean(0) - x[0]).abs() < 5 * std_of_mean[0]).all()


def test_residual_use_keeps_the_skip_path():
    torch.manual_seed(5)
    x = torch.randn(64, 8)
    branch = torch.randn(64, 8)
    out = x + DropPath(0.5).train()(branch)
    dropped = (out == x).all(1)
    kept = torch.isclose(out, x + 2 * branch).all(1)
    assert bool((dropped | kept).all()) and dropped.any() and kept.any()


def test_a_scalar_has_no_batch_dimension():
    with pytest.raises(ValueError, match="leading batch dimension"):
        DropPath(0.1).train()(torch.tensor(1.0))


def test_it_is_a_residual_site_and_apply_rates_sets_it():
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), DropPath(0.1))
    [site] = discover(net)
    assert (site.name, site.attr, site.layer_type, site.rate) == (
        "1.drop_prob",
        "drop_prob",
        "residual",
        0.1,
    )
    apply_rates(net, {"1.drop_prob": 0.6})
    assert net[1].drop_prob == 0.6

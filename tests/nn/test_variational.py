"""VariationalDropout: one mask per sequence, shared across time; inverted scaling."""

from __future__ import annotations

import math

import pytest
import torch

from droptune import apply_rates, discover
from droptune.nn import VariationalDropout

BAD_P = [-0.1, 1.0, 1.5, math.nan, math.inf, True, "0.5", None]


@pytest.mark.parametrize("p", BAD_P, ids=repr)
def test_p_outside_0_1_is_a_value_error(p):
    with pytest.raises(ValueError, match=r"p must be a drop probability in \[0, 1\); got "):
        VariationalDropout(p)


@pytest.mark.parametrize("p", [0, 0.0, 0.5, 0.999])
def test_valid_p_is_stored_as_a_float(p):
    drop = VariationalDropout(p)
    assert drop.p == float(p) and isinstance(drop.p, float)
    assert repr(drop) == f"VariationalDropout(p={float(p)})"


def test_eval_is_the_identity_with_no_test_time_scaling():
    torch.manual_seed(0)
    x = torch.randn(16, 7, 5)
    y = VariationalDropout(0.5).eval()(x)
    assert torch.equal(y, x)  # not x * (1 - p): scaling happens only in training


def test_p_zero_is_the_identity_in_training():
    x = torch.randn(4, 3, 2)
    assert torch.equal(VariationalDropout(0.0).train()(x), x)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_training_output_is_zero_or_scaled_input(p):
    torch.manual_seed(1)
    x = torch.randn(32, 6, 10)
    y = VariationalDropout(p).train()(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / (1 - p))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_mean_is_preserved_in_training(p):
    """E[mask / keep] = 1; tolerance from the binomial variance of the n independent masks."""
    torch.manual_seed(2)
    batch, time, features = 500, 4, 40
    y = VariationalDropout(p).train()(torch.ones(batch, time, features))
    n = batch * features  # one Bernoulli draw per (sequence, feature), shared over time
    std_of_mean = math.sqrt(p / ((1 - p) * n))  # Var(mask/keep) = p / (1 - p)
    assert abs(y.mean().item() - 1.0) < 5 * std_of_mean


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_drop_fraction_is_close_to_p(p):
    torch.manual_seed(3)
    batch, features = 400, 50
    y = VariationalDropout(p).train()(torch.ones(batch, 3, features))
    n = batch * features
    dropped = (y[:, 0] == 0).float().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_the_mask_is_shared_across_time_and_differs_across_sequences():
    torch.manual_seed(4)
    batch, time, features = 64, 9, 32
    y = VariationalDropout(0.5).train()(torch.ones(batch, time, features))
    masks = y != 0
    assert torch.equal(masks, masks[:, :1].expand_as(masks))  # same units at every step
    distinct = {tuple(row.tolist()) for row in masks[:, 0]}
    # 64 random 32-bit masks: a repeat has probability ~ 64^2 / 2^33, so all are distinct.
    assert len(distinct) == batch


def test_gradient_flows_through_kept_units_only():
    torch.manual_seed(5)
    x = torch.ones(8, 4, 6, requires_grad=True)
    y = VariationalDropout(0.25).train()(x)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * m)/dx = m, and y = m for x = 1


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(4, 8), (2, 3, 4, 5)])
def test_input_must_be_batch_time_features(shape, training):
    drop = VariationalDropout(0.3).train(training)
    with pytest.raises(ValueError, match=r"\(batch, time, features\) tensor; got shape"):
        drop(torch.ones(shape))


def test_it_is_a_recurrent_site_and_apply_rates_sets_it():
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), VariationalDropout(0.3))
    [site] = discover(net)
    assert (site.name, site.layer_type, site.rate) == ("1", "recurrent", 0.3)
    apply_rates(net, {"1": 0.0})
    x = torch.randn(2, 3, 4)
    net.train()
    assert torch.equal(net(x), net(x))

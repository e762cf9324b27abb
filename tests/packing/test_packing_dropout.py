"""Rate-tensor dropouts: the masks of the modules they replace, one rate per vmapped member."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

from droptune.exceptions import PackingError
from droptune.models import MLP, DigitsCNN, Mnist1dCNN, PatchTransformer, RecurrentClassifier
from droptune.nn import DropPath, VariationalDropout
from droptune.packing import (
    RateChannelDropout,
    RateDropout,
    RateDropPath,
    RateMultiheadAttention,
    RateVariationalDropout,
    check_packable,
    packable_copy,
)

RATES = torch.tensor([0.0, 0.25, 0.6])


def _vmapped(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``module`` on ``x`` once per rate of RATES, as a population does."""
    module.train()

    def one(rate: torch.Tensor) -> torch.Tensor:
        return functional_call(module, {"rate": rate}, (x,))

    return vmap(one, randomness="different")(RATES)


def test_rate_dropout_drops_each_element_at_its_members_rate_and_rescales() -> None:
    torch.manual_seed(0)
    x = torch.ones(200, 100)
    out = _vmapped(RateDropout(0.5), x)
    for member, rate in enumerate(RATES.tolist()):
        kept = out[member] != 0
        assert abs(1 - kept.float().mean().item() - rate) < 0.01
        torch.testing.assert_close(out[member][kept], torch.full_like(out[member][kept], 1 / (1 - rate)))
    assert torch.equal(out[0], x)  # rate 0: the identity, exactly
    # Different members draw different masks.
    assert not torch.equal(out[1] != 0, out[2] != 0)


@pytest.mark.parametrize(("dims", "shape"), [(1, (64, 50, 7)), (2, (64, 50, 3, 3)), (3, (64, 50, 2, 2, 2))])
def test_channel_dropout_zeroes_whole_channels(dims: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    out = _vmapped(RateChannelDropout(0.5, spatial_dims=dims), torch.ones(shape))
    flat = out.flatten(3)  # (members, N, C, spatial)
    assert torch.equal(flat.amin(-1), flat.amax(-1))  # one value per channel
    for member, rate in enumerate(RATES.tolist()):
        assert abs((flat[member, ..., 0] == 0).float().mean().item() - rate) < 0.02


@pytest.mark.parametrize(
    ("dims", "shape"), [(1, (40, 6)), (2, (30, 40, 6))], ids=["1d-unbatched", "2d-on-3d"]
)
def test_channel_dropout_of_fewer_dimensions_masks_what_torch_masks(
    dims: int, shape: tuple[int, ...]
) -> None:
    # Dropout1d on (C, L) masks channels; Dropout2d on (N, C, L) masks channels of each sample.
    out = RateChannelDropout(0.5, spatial_dims=dims).train()(torch.ones(shape))
    assert torch.equal(out.amin(-1), out.amax(-1))
    assert 0.3 < (out[..., 0] == 0).float().mean().item() < 0.7


def test_drop_path_drops_whole_samples_and_variational_dropout_whole_sequences() -> None:
    torch.manual_seed(0)
    paths = _vmapped(RateDropPath(0.5), torch.ones(400, 5, 6)).flatten(2)
    assert torch.equal(paths.amin(-1), paths.amax(-1))
    assert abs((paths[2, :, 0] == 0).float().mean().item() - 0.6) < 0.07
    seqs = _vmapped(RateVariationalDropout(0.5), torch.ones(50, 8, 30))
    assert torch.equal(seqs[:, :, 0], seqs[:, :, 5])  # the same mask at every time step
    assert abs((seqs[1, :, 0] == 0).float().mean().item() - 0.25) < 0.05


def test_eval_mode_is_the_identity() -> None:
    x = torch.randn(4, 3, 5)
    for module in (
        RateDropout(0.5),
        RateChannelDropout(0.5, spatial_dims=1),
        RateDropPath(0.5),
        RateVariationalDropout(0.5),
    ):
        assert torch.equal(module.eval()(x), x)


def test_packable_copy_replaces_every_site_and_leaves_the_original_alone() -> None:
    model = nn.Sequential(
        nn.Dropout(0.1), nn.Linear(4, 4), nn.Dropout(0.5), DropPath(0.2), VariationalDropout(0.3)
    )
    packed, buffers = packable_copy(model)
    assert [type(m) for m in packed] == [
        RateDropout,
        nn.Linear,
        RateDropout,
        RateDropPath,
        RateVariationalDropout,
    ]
    assert isinstance(model[0], nn.Dropout) and model[0].p == 0.1
    assert buffers == {"0": "0.rate", "2": "2.rate", "3.drop_prob": "3.rate", "4": "4.rate"}
    assert dict(packed.named_buffers())["3.rate"].item() == pytest.approx(0.2)
    assert set(dict(packed.named_parameters())) == set(dict(model.named_parameters()))


@pytest.mark.parametrize(
    ("model", "x"),
    [
        (MLP(), torch.randn(6, 40)),
        (Mnist1dCNN(), torch.randn(6, 40)),
        (DigitsCNN(), torch.randn(6, 1, 8, 8)),
        (PatchTransformer(drop_path=0.2), torch.randn(6, 16, 4)),
    ],
    ids=["MLP", "Mnist1dCNN", "DigitsCNN", "PatchTransformer"],
)
def test_the_copy_of_a_builtin_model_computes_what_the_model_computes(
    model: nn.Module, x: torch.Tensor
) -> None:
    packed, buffers = packable_copy(model)
    assert buffers  # every built-in model has sites
    model.eval()
    packed.eval()
    torch.testing.assert_close(packed(x), model(x))
    # In training with every rate at 0, too (no dropout anywhere).
    for module in model.modules():
        for attr in ("p", "drop_prob"):
            if isinstance(getattr(module, attr, None), float):
                setattr(module, attr, 0.0)
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = 0.0
    for name, value in packed.named_buffers():
        if name.endswith("rate"):
            value.zero_()
    torch.testing.assert_close(packed.train()(x), model.train()(x))


@pytest.mark.parametrize("batch_first", [True, False])
def test_rate_attention_matches_multihead_attention_with_masks_and_weights(
    batch_first: bool,
) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, dropout=0.1, batch_first=batch_first).eval()
    rate_mha = RateMultiheadAttention.from_module(mha).eval()
    q = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    for kwargs in (
        {},
        {"need_weights": False},
        {"attn_mask": causal, "average_attn_weights": False},
        {"key_padding_mask": padding, "attn_mask": causal.isinf()},
    ):
        expected, expected_weights = mha(q, q, q, **kwargs)
        out, weights = rate_mha(q, q, q, **kwargs)
        torch.testing.assert_close(out, expected)
        if expected_weights is not None:
            torch.testing.assert_close(weights, expected_weights)


def test_a_transformer_encoder_layer_is_packed_faithfully() -> None:
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.2)
    packed, buffers = packable_copy(layer)
    assert set(buffers) == {"self_attn.dropout", "dropout", "dropout1", "dropout2"}
    x = torch.randn(7, 3, 16)
    torch.testing.assert_close(packed.eval()(x), layer.eval()(x))


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (
            nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout()),
            "BatchNorm1d.*running statistics",
        ),
        (RecurrentClassifier(), "LSTM.*recurrent layers have no torch.vmap"),
        (
            nn.Sequential(nn.Linear(4, 4), nn.AlphaDropout(0.2)),
            "AlphaDropout.*no rate-tensor version",
        ),
        (
            nn.Sequential(nn.InstanceNorm1d(4, track_running_stats=True), nn.Dropout()),
            "running statistics",
        ),
    ],
    ids=["batchnorm", "lstm", "alpha-dropout", "instance-norm-stats"],
)
def test_models_that_cannot_be_packed_are_refused_with_the_alternative(model: nn.Module, match: str) -> None:
    with pytest.raises(PackingError, match=match) as info:
        check_packable(model)
    assert "--workers-per-gpu" in str(info.value)
    with pytest.raises(PackingError):
        packable_copy(model)


def test_attention_variants_without_a_rate_version_are_refused() -> None:
    with pytest.raises(PackingError, match="kdim/vdim"):
        packable_copy(nn.Sequential(nn.MultiheadAttention(8, 2, kdim=4, vdim=4)))


def test_rate_attention_drops_attention_weights_at_each_members_rate() -> None:
    torch.manual_seed(0)
    mha = RateMultiheadAttention.from_module(nn.MultiheadAttention(16, 4, batch_first=True)).train()
    q = torch.randn(8, 10, 16)
    params = {n: p.detach() for n, p in mha.named_parameters()}

    def weights(rate: torch.Tensor) -> torch.Tensor:
        out = functional_call(mha, ({**params, "rate": rate}), (q, q, q), {"average_attn_weights": False})
        return out[1]

    dropped = vmap(weights, randomness="different")(RATES)  # (members, N, heads, L, S)
    for member, rate in enumerate(RATES.tolist()):
        assert abs((dropped[member] == 0).float().mean().item() - rate) < 0.03
    expected = mha.eval()(q, q, q, average_attn_weights=False)[1]
    torch.testing.assert_close(dropped[0], expected)  # rate 0: the weights of eval mode

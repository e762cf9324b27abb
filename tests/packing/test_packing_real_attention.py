"""Packing real attention code: `.p` read and handed to SDPA / F.dropout, rates held as floats.

Population-level: each member gets its own rate where the model's code calls dropout
functionally, and a member whose rates are 0 trains exactly as its unpacked twin.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from droptune import discover
from droptune.exceptions import PackingError
from droptune.packing import PackedData, Population, packable_copy, packed_optimizer
from droptune.packing._functional import attention
from droptune.testing import TinyDataModule

CPU = torch.device("cpu")
transformers = pytest.importorskip("transformers")


def _load_timm_like():  # by path: the same module whatever the import mode of the run
    path = Path(__file__).parents[1] / "real_models" / "_timm_like.py"
    spec = importlib.util.spec_from_file_location("droptune_tests_timm_like", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VisionTransformer = _load_timm_like().VisionTransformer


class Classifier(pl.LightningModule):
    """A LightningModule holding a backbone, as a user would wrap one."""

    def __init__(self, net: nn.Module, *, tokens: bool) -> None:
        super().__init__()
        self.net = net
        self.tokens = tokens
        self.loss_fn = F.cross_entropy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tokens:  # 8 features in [0, 1) as 8 token ids
            logits = self.net(input_ids=(x[..., :8].abs() * 50).long().clamp(0, 99)).logits
            return logits[:, -1, :3] if logits.dim() == 3 else logits  # a causal LM: the last token
        return self.net(
            x[..., :48].reshape(*x.shape[:-1], 3, 4, 4).repeat_interleave(2, -1).repeat_interleave(2, -2)
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _bert(attn: str) -> Classifier:
    config = transformers.BertConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        vocab_size=100,
        max_position_embeddings=16,
        num_labels=3,
        attn_implementation=attn,
        initializer_range=0.5,  # large weights: attention dropout shows in the loss
    )
    return Classifier(transformers.BertForSequenceClassification(config), tokens=True)


def _llama() -> Classifier:
    config = transformers.LlamaConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=32,
        vocab_size=100,
        max_position_embeddings=16,
        attention_dropout=0.1,
        attn_implementation="sdpa",
        initializer_range=0.5,
    )
    model = Classifier(transformers.LlamaForCausalLM(config), tokens=True)
    return model


def _vit() -> Classifier:
    return Classifier(VisionTransformer(depth=2, num_classes=3), tokens=False)


BUILDERS = {
    "bert-sdpa": lambda: _bert("sdpa"),
    "bert-eager": lambda: _bert("eager"),
    "llama-sdpa": _llama,
    "timm-vit": _vit,
}


def _data() -> tuple[TinyDataModule, PackedData]:
    data = TinyDataModule(in_features=48)
    return data, PackedData.from_datamodule(TinyDataModule(in_features=48), device=CPU, seed=0)


def _train_alone(model: Classifier, data: TinyDataModule, epochs: int) -> list[float]:
    optimizer = model.configure_optimizers()
    loader = data.train_dataloader()
    model.train()
    losses = []
    for _ in range(epochs):
        batch = []
        for x, y in itertools.islice(loader, len(loader)):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch.append(loss.item())
        losses.append(sum(batch) / len(batch))
    return losses


@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_packed_real_model_trains_each_member_at_its_own_rates(name):
    torch.manual_seed(0)
    template = BUILDERS[name]()
    data, packed_data = _data()
    x = next(iter(data.train_dataloader()))[0][:2]
    sites = discover(template, x)
    functional = [s.name for s in sites if s.functional]
    assert functional, "the model hands a rate to functional dropout or SDPA"
    base, buffers = packable_copy(template, sites)
    population = Population(
        base=base,
        rate_buffers=buffers,
        loss_fn=F.cross_entropy,
        optimizer=packed_optimizer(template),
        device=CPU,
        classify=True,
    )
    population.probe(packed_data.x_val[:4], packed_data.y_val[:4])
    zero = dict.fromkeys(buffers, 0.0)
    only_functional = {**zero, **dict.fromkeys(functional, 0.5)}
    twin = copy.deepcopy(template)
    population.add([copy.deepcopy(template) for _ in range(3)], [zero, only_functional, zero])
    losses = [population.train_epoch(packed_data.train_batches()) for _ in range(2)]
    from droptune import apply_rates

    apply_rates(twin, zero)
    alone = _train_alone(twin, data, epochs=2)
    assert [e[0].item() for e in losses] == pytest.approx(alone, rel=1e-4, abs=1e-5)
    assert [e[2].item() for e in losses] == pytest.approx(alone, rel=1e-4, abs=1e-5)
    # The functional rates reached the calls of member 1 only: 0 and 2 stay bit-identical.
    assert losses[-1][0].item() == losses[-1][2].item()
    assert abs(losses[-1][1].item() - losses[-1][0].item()) > 1e-3
    assert population.rates()[functional[0]].tolist() == [0.0, 0.5, 0.0]


class FusedAttention(nn.Module):
    """timm's fused path: the nn.Dropout never runs, its .p goes to SDPA."""

    def __init__(self) -> None:
        super().__init__()
        self.attn_drop = nn.Dropout(0.1)
        self.scale = 0.1  # a float attribute that feeds no dropout

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, q, q, dropout_p=self.attn_drop.p if self.training else 0.0)


def test_sdpa_fed_by_dot_p_gets_each_members_rate_under_vmap():
    torch.manual_seed(0)
    q = torch.randn(1, 2, 64, 8)
    module = FusedAttention()
    base, buffers = packable_copy(module, discover(module, q))
    assert buffers == {"attn_drop": "attn_drop.rate"}
    base.train()

    def one(rate: torch.Tensor) -> torch.Tensor:
        return functional_call(base, {"attn_drop.rate": rate}, (q,))

    out = vmap(one, randomness="different")(torch.tensor([0.0, 0.3, 0.6]))
    exact = F.scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(out[0], exact)  # rate 0: plain attention
    assert not torch.allclose(out[1], exact) and not torch.allclose(out[1], out[2])
    # The written-out attention matches the kernel, masks and causality included.
    mask = torch.rand(64, 64) > 0.3
    torch.testing.assert_close(
        attention(q, q, q, attn_mask=mask), F.scaled_dot_product_attention(q, q, q, attn_mask=mask)
    )
    torch.testing.assert_close(
        attention(q, q, q, is_causal=True), F.scaled_dot_product_attention(q, q, q, is_causal=True)
    )


class FloatRate(nn.Module):
    def __init__(self, fn=F.dropout) -> None:
        super().__init__()
        self.attention_dropout = 0.2
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, p=self.attention_dropout, training=self.training)


def test_a_float_attribute_rate_drops_at_each_members_rate():
    x = torch.ones(200, 100)
    module = FloatRate()
    sites = discover(module, x)
    assert [s.name for s in sites] == ["attention_dropout"]
    base, buffers = packable_copy(module, sites)
    assert buffers == {"attention_dropout": "rate_attention_dropout"}
    assert module.attention_dropout == 0.2  # the original is untouched
    base.train()
    rates = torch.tensor([0.0, 0.25, 0.6])
    out = vmap(lambda r: functional_call(base, {"rate_attention_dropout": r}, (x,)), randomness="different")(
        rates
    )
    for member, rate in enumerate(rates.tolist()):
        assert abs((out[member] == 0).float().mean().item() - rate) < 0.01
    assert torch.equal(out[0], x)


def test_dot_p_outside_a_packed_forward_pass_is_a_clear_error():
    base, _ = packable_copy(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.3)))
    with pytest.raises(PackingError, match=r"RateDropout\.p was read outside a packed forward pass"):
        _ = base[1].p


def test_a_packed_rate_fed_to_a_kind_without_a_packed_version_is_refused_naming_it():
    x = torch.ones(4, 8)
    module = FloatRate(fn=F.alpha_dropout)
    base, _ = packable_copy(module, discover(module, x))
    with pytest.raises(
        PackingError, match=r"\.rate_attention_dropout feeds alpha_dropout, which has no per-member"
    ):
        base.train()(x)


def test_an_untuned_site_whose_dot_p_feeds_sdpa_still_packs():
    torch.manual_seed(0)
    q = torch.randn(1, 2, 16, 8)
    module = nn.Sequential(FusedAttention(), nn.Dropout(0.2))
    tuned = [s for s in discover(module, q) if s.name == "1"]  # the attention site is excluded
    base, buffers = packable_copy(module, tuned)
    assert buffers == {"1": "1.rate"}
    out = vmap(lambda r: functional_call(base.train(), {"1.rate": r}, (q,)), randomness="different")(
        torch.tensor([0.0, 0.5])
    )
    assert out.shape == (2, 1, 2, 16, 8)

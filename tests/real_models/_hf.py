"""Tiny transformers models built from their configs: random init, nothing downloaded.

Each family: a builder (attn_implementation -> model), an example input, and the layer
type expected of every site, by site-name glob (fnmatch), first match wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

transformers = __import__("pytest").importorskip("transformers")

VOCAB, SEQ = 100, 8
_TEXT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "vocab_size": VOCAB,
    "max_position_embeddings": 64,
}


def _ids() -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(0, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(0))}


@dataclass
class Family:
    build: Callable[[str], nn.Module]
    example: Callable[[], dict[str, Any]]
    types: dict[str, str]  # site-name glob -> expected layer type


FAMILIES: dict[str, Family] = {
    "bert": Family(
        lambda attn: transformers.BertForSequenceClassification(
            transformers.BertConfig(**_TEXT, attn_implementation=attn)
        ),
        _ids,
        {
            "bert.embeddings.dropout": "input",
            "*.attention.self.dropout": "attention",
            "*.attention.output.dropout": "hidden",  # hidden_dropout_prob, after attention
            "*.layer.?.output.dropout": "hidden",  # hidden_dropout_prob, after the FFN
            "dropout": "dense",  # the classifier's
        },
    ),
    "gpt2": Family(
        lambda attn: transformers.GPT2LMHeadModel(
            transformers.GPT2Config(
                n_embd=32,
                n_layer=2,
                n_head=2,
                vocab_size=VOCAB,
                n_positions=64,
                bos_token_id=0,
                eos_token_id=0,
                attn_implementation=attn,
            )
        ),
        _ids,
        {
            "transformer.drop": "input",
            "*.attn.attn_dropout": "attention",
            "*.resid_dropout": "hidden",
            "*.mlp.dropout": "hidden",
        },
    ),
    "distilbert": Family(
        lambda attn: transformers.DistilBertModel(
            transformers.DistilBertConfig(
                dim=32,
                n_layers=2,
                n_heads=2,
                hidden_dim=64,
                vocab_size=VOCAB,
                max_position_embeddings=64,
                attn_implementation=attn,
            )
        ),
        _ids,
        {"embeddings.dropout": "input", "*.attention.dropout": "attention", "*.ffn.dropout": "hidden"},
    ),
    "llama": Family(
        lambda attn: transformers.LlamaForCausalLM(
            transformers.LlamaConfig(
                **_TEXT, num_key_value_heads=1, attention_dropout=0.1, attn_implementation=attn
            )
        ),
        _ids,
        {"model.layers.?.self_attn.attention_dropout": "attention"},
    ),
    "qwen2": Family(
        lambda attn: transformers.Qwen2ForCausalLM(
            transformers.Qwen2Config(
                **_TEXT, num_key_value_heads=1, attention_dropout=0.1, attn_implementation=attn
            )
        ),
        _ids,
        {"model.layers.?.self_attn.attention_dropout": "attention"},
    ),
    "bart": Family(
        lambda attn: transformers.BartForConditionalGeneration(
            transformers.BartConfig(
                d_model=32,
                encoder_layers=2,
                decoder_layers=2,
                encoder_attention_heads=2,
                decoder_attention_heads=2,
                encoder_ffn_dim=64,
                decoder_ffn_dim=64,
                vocab_size=VOCAB,
                max_position_embeddings=64,
                attention_dropout=0.1,
                activation_dropout=0.1,
                attn_implementation=attn,
            )
        ),
        lambda: {**_ids(), "decoder_input_ids": _ids()["input_ids"]},
        {
            "model.*.layerdrop": "layerdrop",  # self.layerdrop (encoder_/decoder_layerdrop), at 0
            "model.encoder.dropout": "input",
            "model.decoder.dropout": "input",
            "*_attn.dropout": "attention",
            "*.layers.?.dropout": "hidden",
            "*.layers.?.activation_dropout": "hidden",
        },
    ),
    "vit": Family(
        lambda attn: transformers.ViTForImageClassification(
            transformers.ViTConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                image_size=16,
                patch_size=8,
                hidden_dropout_prob=0.1,
                attention_probs_dropout_prob=0.1,
                attn_implementation=attn,
            )
        ),
        lambda: {"pixel_values": torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))},
        {
            "vit.embeddings.dropout": "input",
            "*.attention.attention_dropout": "attention",
            "*.dropout": "hidden",
        },
    ),
}

# How many sites each family has (2 layers): every dropout place of the model, none missed.
SITE_COUNTS = {"bert": 8, "gpt2": 7, "distilbert": 5, "llama": 2, "qwen2": 2, "bart": 18, "vit": 5}


def output(out: Any) -> torch.Tensor:
    """The main tensor of a transformers ModelOutput (logits or last hidden state)."""
    return out[0] if not isinstance(out, torch.Tensor) else out

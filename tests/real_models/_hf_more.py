"""More tiny transformers families: LayerDrop (OPT, Whisper, Wav2Vec2, HuBERT), config-read rates (Falcon), GPT-NeoX, DeBERTa-v2.

Same shape as :mod:`._hf`: a builder (attn_implementation -> model), an example input, and
the layer type expected of every site, by site-name glob, first match wins.
"""

from __future__ import annotations

import torch

from ._hf import _TEXT, VOCAB, Family, _ids, transformers


def _audio() -> dict[str, torch.Tensor]:
    return {"input_values": torch.randn(2, 400, generator=torch.Generator().manual_seed(0))}


def _whisper_input() -> dict[str, torch.Tensor]:
    mel = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(0))
    return {"input_features": mel, "decoder_input_ids": _ids()["input_ids"]}


_WAV2VEC2 = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16, 16),
    "conv_stride": (5, 2),
    "conv_kernel": (10, 3),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "layerdrop": 0.1,  # the library default, read from the config at forward time
    # SpecAugment masks time steps with numpy's RNG in training: not a dropout site, so off here.
    "mask_time_prob": 0.0,
}

MORE: dict[str, Family] = {
    "opt": Family(
        lambda attn: transformers.OPTForCausalLM(
            transformers.OPTConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                ffn_dim=64,
                word_embed_proj_dim=32,
                vocab_size=VOCAB,
                max_position_embeddings=64,
                dropout=0.1,
                attention_dropout=0.1,
                layerdrop=0.1,
                pad_token_id=0,
                bos_token_id=0,
                eos_token_id=0,
                attn_implementation=attn,
            )
        ),
        _ids,
        {"model.decoder.layerdrop": "layerdrop", "*.self_attn.dropout": "attention", "*.layers.?.dropout": "hidden"},
    ),
    "whisper": Family(
        lambda attn: transformers.WhisperForConditionalGeneration(
            transformers.WhisperConfig(
                d_model=32,
                encoder_layers=2,
                decoder_layers=2,
                encoder_attention_heads=2,
                decoder_attention_heads=2,
                encoder_ffn_dim=64,
                decoder_ffn_dim=64,
                num_mel_bins=8,
                max_source_positions=16,
                max_target_positions=16,
                vocab_size=VOCAB,
                dropout=0.1,
                activation_dropout=0.0,
                attention_dropout=0.1,
                encoder_layerdrop=0.1,
                decoder_layerdrop=0.1,
                pad_token_id=0,
                bos_token_id=0,
                eos_token_id=0,
                decoder_start_token_id=0,
                attn_implementation=attn,
            )
        ),
        _whisper_input,
        {
            "model.*.layerdrop": "layerdrop",  # self.layerdrop, from encoder_/decoder_layerdrop
            "model.encoder.dropout": "input",
            "model.decoder.dropout": "input",
            "*_attn.dropout": "attention",
            "*.layers.?.dropout": "hidden",
            "*.layers.?.activation_dropout": "hidden",  # at 0.0: a site all the same
        },
    ),
    "wav2vec2": Family(
        lambda attn: transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**_WAV2VEC2, attn_implementation=attn)),
        _audio,
        {
            "config.layerdrop": "layerdrop",  # the encoder reads self.config.layerdrop
            "feature_projection.dropout": "input",
            "encoder.dropout": "input",  # after the positional conv, permuted back to (B, T, C)
            "*.attention.dropout": "attention",
            "*": "hidden",
        },
    ),
    "hubert": Family(
        lambda attn: transformers.HubertModel(transformers.HubertConfig(**_WAV2VEC2, attn_implementation=attn)),
        _audio,
        {
            "config.layerdrop": "layerdrop",  # read from the config at forward time, as in Wav2Vec2
            "feature_projection.dropout": "input",
            "encoder.dropout": "input",
            "*.attention.dropout": "attention",
            "*": "hidden",
        },
    ),
    "falcon": Family(
        lambda attn: transformers.FalconForCausalLM(
            transformers.FalconConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                vocab_size=VOCAB,
                parallel_attn=False,
                attn_implementation=attn,
            )
        ),
        _ids,
        {
            "config.*": "hidden",  # dropout_add(out, residual, self.config.*_dropout)
            "*.self_attention.attention_dropout": "attention",
        },
    ),
    "gpt_neox": Family(
        lambda attn: transformers.GPTNeoXForCausalLM(
            transformers.GPTNeoXConfig(
                **_TEXT, hidden_dropout=0.1, attention_dropout=0.1, attn_implementation=attn
            )
        ),
        _ids,
        {
            "gpt_neox.emb_dropout": "input",
            "*.attention.attention_dropout": "attention",
            "*.post_*_dropout": "hidden",  # parallel residual: layer 0's MLP sees no attention
        },
    ),
    "deberta_v2": Family(
        lambda attn: transformers.DebertaV2Model(
            transformers.DebertaV2Config(**_TEXT, conv_kernel_size=3, attn_implementation=attn)
        ),
        _ids,
        {
            "embeddings.dropout": "input",
            "*.attention.self.dropout": "attention",
            "*": "hidden",  # encoder.conv.dropout too: a conv sub-layer's output before the add
        },
    ),
}

SITE_COUNTS_MORE = {"opt": 5, "whisper": 18, "wav2vec2": 11, "hubert": 11, "falcon": 4, "gpt_neox": 7, "deberta_v2": 8}
EAGER_ONLY = {"deberta_v2"}  # no sdpa in transformers' DeBERTa-v2

"""Zoo family ``decode``: one decode step of ``model.generate()`` with a KV cache of C tokens (inference only).

The step is the one :mod:`flopcast.features.generate` traces: the next token of each of B sequences given a
cache of C tokens, the model's forward with a transformers ``DynamicCache`` that concatenates the new token's
keys and values onto the cache. The cache comes in as one input, ``float32[B, 2 L, KV heads, C, head dim]`` (batch
first, as every zoo input), whose per-layer slices become the cache's tensors (views: nothing is copied before the
step runs; the step's concatenation writes each layer's grown cache, as in ``generate()``). Measured at
fp32. GPT-2 and a grouped-query Llama at three cache lengths each, smaller than the benchmark's models
(``experiments/generate_benchmark.py``), so that benchmark stays out of the calibration.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from flopcast.calibration.zoo.hf import hf_model
from flopcast.calibration.zoo.registry import register_zoo_model

CACHE_LENGTHS = (128, 512, 2048)
"""Cache lengths C of the decode steps."""
GPT2 = {"n_layer": 4, "n_embd": 512, "n_head": 8, "vocab_size": 16384, "n_positions": 4096}
LLAMA = {"num_hidden_layers": 4, "hidden_size": 512, "intermediate_size": 1408, "num_attention_heads": 8,
         "num_key_value_heads": 2, "vocab_size": 16384, "max_position_embeddings": 4096}


class DecodeStep(nn.Module):
    """One decode step of a causal LM: ``forward(ids [B, 1], past [B, 2 L, KV, C, D])`` -> logits ``[B, 1, V]``.

    Args:
        lm: a transformers causal LM (its ``use_cache`` switched on for the step).
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        """Next-token logits of ``ids`` after the cache ``past`` (layer i: keys ``past[:, 2i]``, values the next).

        Args:
            ids: the new token of each sequence, ``[B, 1]``.
            past: the cache of C tokens, ``[B, 2 L, KV heads, C, head dim]``.

        Returns:
            The next-token logits, ``[B, 1, vocab]``.
        """
        from transformers import DynamicCache

        cache = DynamicCache(config=self.lm.config)
        for i, layer in enumerate(cache.layers):  # the cache as generate() holds it after C tokens
            layer.keys, layer.values = past[:, 2 * i], past[:, 2 * i + 1]
            layer.device, layer.is_initialized = past.device, True
        return self.lm(ids, cache=cache, use_cache=True).logits


def _decode(model_class: str, config_class: str, config: dict[str, int]) -> nn.Module:
    lm = hf_model(model_class, config_class, **config)
    lm.config.use_cache = True
    return DecodeStep(lm)


def _register(name: str, builder: Callable[[], nn.Module], past: str, vocab: int) -> None:
    register_zoo_model(name=name, family="decode", inputs=(f"int64[B,1]<{vocab}", past), batch_sizes=(1, 4, 16),
                       gpu_batch_sizes=(1, 16, 64), modes=("infer",), precisions=("fp32",))(builder)


def gpt2_decode() -> nn.Module:
    """GPT-2 (4x512, 8 heads) decode step with a KV cache."""
    return _decode("GPT2LMHeadModel", "GPT2Config", GPT2)


def llama_decode() -> nn.Module:
    """Llama (4x512, 8 query heads, 2 KV heads) decode step with a KV cache."""
    return _decode("LlamaForCausalLM", "LlamaConfig", LLAMA)


for _c in CACHE_LENGTHS:
    _register(f"gpt2-decode-c{_c}", gpt2_decode, f"float32[B,8,8,{_c},64]", GPT2["vocab_size"])
    _register(f"llama-decode-c{_c}", llama_decode, f"float32[B,8,2,{_c},64]", LLAMA["vocab_size"])

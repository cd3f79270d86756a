"""Builds Hugging Face ``transformers`` models from config objects (no downloads) for the zoo."""

from __future__ import annotations

from typing import Any

from torch import nn


def hf_model(model_class: str, config_class: str, attn: str = "sdpa", **config: Any) -> nn.Module:
    """Instantiate a randomly initialised ``transformers`` model from a config built on the spot.

    ``transformers`` is imported here, not at module import, so that importing the zoo stays fast.
    The KV cache is switched off (``use_cache=False``), so that a forward on ``input_ids`` alone returns an
    output whose first tensor is ``logits``; attention uses PyTorch SDPA unless ``attn`` names another
    implementation (``eager``: the explicit matmul-softmax-matmul, as published benchmarks ran it).

    Args:
        model_class: name of the model class in ``transformers``, e.g. ``"GPT2LMHeadModel"``.
        config_class: name of its config class, e.g. ``"GPT2Config"``.
        attn: ``attn_implementation`` (``sdpa`` or ``eager``).
        **config: config fields (layers, widths, vocabulary size, ...).

    Returns:
        The model, in training mode, mapping ``input_ids`` ``(B, T)`` to an output with ``.logits``
        ``(B, T, vocab_size)``.

    """
    import transformers

    cfg = getattr(transformers, config_class)(use_cache=False, **config)
    cfg._attn_implementation = attn
    model = getattr(transformers, model_class)(cfg)
    model.train()
    return model

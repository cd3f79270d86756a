"""Builds Hugging Face ``transformers`` models from config objects (no downloads) for the zoo."""

from __future__ import annotations

from typing import Any

from torch import nn


def hf_model(model_class: str, config_class: str, **config: Any) -> nn.Module:
    """Instantiate a randomly initialised ``transformers`` model from a config built on the spot.

    ``transformers`` is imported here, not at module import, so that importing the zoo stays fast.
    The KV cache is switched off (``use_cache=False``) and attention uses PyTorch SDPA, so that a
    forward on ``input_ids`` alone returns an output whose first tensor is ``logits``.

    Args:
        model_class: name of the model class in ``transformers``, e.g. ``"GPT2LMHeadModel"``.
        config_class: name of its config class, e.g. ``"GPT2Config"``.
        **config: config fields (layers, widths, vocabulary size, ...).

    Returns:
        The model, in training mode, mapping ``input_ids`` ``(B, T)`` to an output with ``.logits``
        ``(B, T, vocab_size)``.

    """
    import transformers

    cfg = getattr(transformers, config_class)(use_cache=False, **config)
    cfg._attn_implementation = "sdpa"
    model = getattr(transformers, model_class)(cfg)
    model.train()
    return model

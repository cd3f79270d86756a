"""Zoo family ``transformer-decoder``: reduced GPT-2 and Llama causal language models from HF configs."""

from __future__ import annotations

from torch import nn

from flopcast.calibration.zoo.hf import hf_model
from flopcast.calibration.zoo.registry import register_zoo_model


@register_zoo_model(
    name="gpt2-mini",
    family="transformer-decoder",
    inputs=("int64[B,64]<8192",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(8, 32, 64),
)
def gpt2_mini(
    n_layer: int = 4,
    n_embd: int = 256,
    n_head: int = 4,
    vocab_size: int = 8192,
    n_positions: int = 64,
) -> nn.Module:
    """GPT-2 decoder (learned positions, GELU MLP, tied LM head) at 4x256; GPT-2 small is 12x768, 50257.

    Args:
        n_layer: decoder blocks.
        n_embd: hidden width.
        n_head: attention heads.
        vocab_size: vocabulary size (token ids must be below it).
        n_positions: maximum sequence length.

    Returns:
        ``GPT2LMHeadModel`` mapping ``input_ids`` ``(B, T)`` to ``logits`` ``(B, T, vocab_size)``.

    """
    return hf_model(
        "GPT2LMHeadModel",
        "GPT2Config",
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        vocab_size=vocab_size,
        n_positions=n_positions,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )


@register_zoo_model(
    name="llama-mini",
    family="transformer-decoder",
    inputs=("int64[B,64]<8192",),
    batch_sizes=(1, 4, 8),
    gpu_batch_sizes=(8, 32, 64),
)
def llama_mini(
    num_hidden_layers: int = 4,
    hidden_size: int = 256,
    intermediate_size: int = 688,
    num_attention_heads: int = 8,
    num_key_value_heads: int = 4,
    vocab_size: int = 8192,
    max_position_embeddings: int = 64,
) -> nn.Module:
    """Llama decoder (RMSNorm, RoPE, SwiGLU, grouped-query attention, untied head) reduced to 4x256.

    Args:
        num_hidden_layers: decoder blocks.
        hidden_size: hidden width.
        intermediate_size: SwiGLU hidden width.
        num_attention_heads: query heads.
        num_key_value_heads: key/value heads (grouped-query attention when fewer than query heads).
        vocab_size: vocabulary size (token ids must be below it).
        max_position_embeddings: maximum sequence length.

    Returns:
        ``LlamaForCausalLM`` mapping ``input_ids`` ``(B, T)`` to ``logits`` ``(B, T, vocab_size)``.

    """
    return hf_model(
        "LlamaForCausalLM",
        "LlamaConfig",
        num_hidden_layers=num_hidden_layers,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        vocab_size=vocab_size,
        max_position_embeddings=max_position_embeddings,
    )

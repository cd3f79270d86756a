"""Cost formulas of PyTorch aten ops; importing this package fills the registry.

One module per family: :mod:`matmul`, :mod:`conv`, :mod:`attention`, :mod:`pointwise`,
:mod:`reduction`, :mod:`norm`, :mod:`softmax`, :mod:`pooling`, :mod:`embedding`, :mod:`rnn`,
:mod:`loss`, :mod:`optimizer`, :mod:`data_movement`. Every op lands in exactly one outcome: a formula,
a documented zero (``register_zero_cost``: views/metadata move no bytes, copies move them), or
*unsupported* (not registered here, reported by the tracer; never a silent zero).

What we count
=============
FLOPs
    One multiply-add is 2 FLOPs; ``OpCost.macs`` reports the multiply-accumulates of matmul, conv,
    attention and RNN ops so FLOPs = 2 x MACs (+ the element-wise extras listed below).

Matmul (``matmul.py``)
    ``(m, k) @ (k, n)``: 2mkn; batched: times the batch; ``addmm``/``baddbmm``/``addbmm``/``addmv``
    add one FLOP per output element for the bias term (none when ``beta == 0``).

Convolution (``conv.py``)
    2 x out_elems x (Cin / groups) x prod(kernel), + out_elems for the bias. A transposed conv is
    counted from the input side: 2 x in_elems x (Cout / groups) x prod(kernel). ``convolution_backward``:
    grad_input and grad_weight each cost the forward's FLOPs, grad_bias one add per grad_output
    element, each only where ``output_mask`` asks for it. (``FlopCounterMode`` charges grad_weight of a
    grouped conv ``groups`` times more and ignores bias; we count what the kernel computes.)

Attention (``attention.py``)
    Forward: 4·B·H·Lq·Lkv·D (``Q K^T`` and ``P V``; MACs B·H·Lq·Lkv·(Dqk + Dv)), plus 9 FLOPs per score
    (scale + an 8-FLOP softmax). Backward: 2.5x the forward's MACs (recomputed ``Q K^T``, ``dO V^T``,
    ``P^T dO``, ``dS K``, ``dS^T Q``, as torch's flop counter) plus 8 FLOPs per score. H is the number
    of query heads (GQA broadcasts K/V). Causal masking is *not* discounted: the full Lq x Lkv matrix
    is charged (torch's convention). Flash kernels skip the masked blocks: cost models use the executed
    share from ``features/attention_mask.py``. The fused inference paths ``_native_multi_head_attention``
    (``nn.MultiheadAttention``) and ``_transformer_encoder_layer_fwd`` (``nn.TransformerEncoderLayer``
    in eval without grad) are charged the sum of their unfused ops: projections as ``addmm``,
    attention as above, layer norms, the feed-forward activation and the residual adds.

Element-wise (``pointwise.py``, table ``POINTWISE_FLOPS``)
    FLOPs per output element: add/sub/mul/div/floor_divide/neg/abs/sqrt/rsqrt/compare/relu/max/min = 1,
    transcendental (exp, log, tanh, sigmoid, erf, sin, cos, pow) = ``TRANSCENDENTAL`` = 4,
    addcmul/addcdiv/lerp = 3, sigmoid/tanh backward = 3, silu = 5, silu backward = 9,
    gelu = 8 (erf form; the tanh form is charged the same), gelu backward = 13, native_dropout = 3,
    bernoulli_ = 2 (draw + compare). In-place forms (``add_``) cost the same and read their inputs,
    write ``self`` once.

Reductions (``reduction.py``)
    1 FLOP per *input* element (sum, mean, amax, argmax, cumsum, ...), var/std 3, vector norm 2,
    logsumexp 5; sort ``n log2(dim)``, topk ``n log2(k + 1)`` compares.

Norms (``norm.py``)
    Per input element: layer/group/batch norm forward 5 (+2 affine), backward 8; RMS norm forward 3
    (+1 weight), backward 6; batch norm in eval mode 2.

Softmax (``softmax.py``)
    Per element: softmax / log_softmax forward 8 (max, sub, exp, sum, div), softmax backward 4,
    log_softmax backward 7.

Pooling and interpolation (``pooling.py``)
    Pools: output elements x window; max-pool backward 1 per grad element, avg-pool backward grad
    elements x window; adaptive pools use the largest window ``ceil(in / out)``. Interpolation with
    t taps (linear 2, bilinear 4, bicubic 16, trilinear 8): 2t - 1 per output, 2t per grad element
    backward. Nearest upsampling is a copy; its backward 1 add per grad element.

Embedding (``embedding.py``)
    0 FLOPs; reads only the gathered rows (output bytes) and the indices, never the whole table.
    ``embedding_dense_backward``: one add per gathered element, writes the dense gradient.
    Bags: one add per gathered element (+1 with per-sample weights; mean: a divide per output).

RNN (``rnn.py``)
    Per token, every gate matrix: 2 x (G·H) x (I + H) per layer, plus per hidden unit the gate maths
    (LSTM 24, GRU 17, tanh-RNN 4) and the gate sums (3G with biases). Backward: 2x the forward
    (grad input and grad weights; cuDNN's backward without weight grads: 1x). ``_cudnn_rnn`` reads
    input, weights and initial states once and writes output, final states and its reserve space
    (the weight buffer aliases the weights: not counted twice); its backward reads those plus the
    output grads and the reserve, and writes the grads.

Losses (``loss.py``)
    Per input element (mse 3, smooth-L1 5, BCE 13, ...); NLL: one add per target, reading only the
    picked log-probabilities.

Optimizer (``optimizer.py``)
    For-loop steps run the element-wise ops above. ``_foreach_<op>`` costs its element-wise op's
    FLOPs per element summed over the list. Fused Adam 13 per element (+1 AdamW decay, +2 Adam L2
    decay, +1 AMSGrad); fused SGD 2 (+3 momentum, +2 nesterov, +2 weight decay). Gradient scaler:
    unscale 2 per gradient element (finiteness check, multiply by the inverse scale), scale update 3.

Bytes
=====
``bytes_read`` / ``bytes_written`` stay ``None`` (the tracer then uses the summed contiguous sizes of
inputs and outputs) except where that is wrong: write-only fills (``zeros_like``, ``fill_``, factory
ops) read 0; in-place ops read their inputs once and write ``self`` once (overwrites such as
``copy_``/``fill_``/``bernoulli_`` do not read ``self``); gathers (embedding, index, gather,
index_select, NLL) read only the selected elements plus the indices; ``_foreach_*`` and fused
optimizer ops sum over their lists. Broadcasting is invisible here: an ``expand`` result is passed as
contiguous-size metadata, so an op reading an expanded tensor is charged its expanded size.
"""

from __future__ import annotations

from flopcast.features.formulas import (  # noqa: F401  (imported for their registrations)
    attention,
    conv,
    data_movement,
    embedding,
    loss,
    matmul,
    norm,
    optimizer,
    pointwise,
    pooling,
    reduction,
    rnn,
    softmax,
)

"""Fused recurrent layers and cells (oneDNN on CPU, cuDNN and THNN fused cells on CUDA)."""

from __future__ import annotations

from flopcast.features.formulas._common import aten, metas, nbytes, numel
from flopcast.features.formulas.pointwise import TRANSCENDENTAL as T
from flopcast.features.records import Category, OpCost
from flopcast.features.registry import Call, Formula, register_op_cost

#: ``mode`` values shared by cuDNN and oneDNN RNN ops.
RNN_RELU, RNN_TANH, LSTM, GRU = 0, 1, 2, 3
#: Gates per hidden unit of each mode.
GATES = {RNN_RELU: 1, RNN_TANH: 1, LSTM: 4, GRU: 3}
#: Element-wise FLOPs per hidden unit and time step after the gate pre-activations are summed:
#: LSTM 3 sigmoids + 2 tanh + c' = f*c + i*g (3) + h = o*tanh(c') (1); GRU 2 sigmoids + tanh +
#: n = tanh(x_n + r*h_n) (2) + h' = (1-z)*n + z*h (3); RNN: tanh or relu.
GATE_FLOPS = {RNN_RELU: 1, RNN_TANH: T, LSTM: 5 * T + 4, GRU: 3 * T + 5}
#: Backward costs this many times the forward (two matmuls per forward matmul: grad input and grad
#: weight; the element-wise chain rule costs about twice the forward's).
BACKWARD_FACTOR = 2


def gate_flops(mode: int, units: int, has_biases: bool) -> int:
    """Element-wise FLOPs of ``units`` (hidden units x steps): gate sums, biases and the gate maths."""
    g = GATES[mode]
    return units * (GATE_FLOPS[mode] + g * (3 if has_biases else 1))


def rnn_cost(tokens: int, weights: list, hidden: int, mode: int, has_biases: bool, factor: int = 1,
             layers: int | None = None) -> OpCost:
    """Cost of running RNN layers over ``tokens`` (steps x batch) rows.

    Args:
        tokens: time steps x batch size.
        weights: weight metadata of all layers and directions; the 2-D ones are the gate matrices.
        hidden: hidden size H.
        mode: RNN_RELU, RNN_TANH, LSTM or GRU.
        has_biases: whether the layers have bias vectors.
        factor: 1 for the forward, :data:`BACKWARD_FACTOR` for the backward.
        layers: layers x directions (default: half the gate matrices, W_ih and W_hh per layer).
    """
    mats = [w for w in metas(weights) if len(w.shape) == 2]
    macs = tokens * sum(w.numel for w in mats) * factor
    layers = layers if layers is not None else max(1, len(mats) // 2)
    return OpCost(flops=2 * macs + factor * gate_flops(mode, tokens * hidden * layers, has_biases), macs=macs)


def _tokens(x: object) -> int:
    """Steps x batch of an RNN input ``(T, B, I)``, ``(B, T, I)`` or packed ``(sum of lengths, I)``."""
    m = metas(x)[0]
    return m.numel // m.shape[-1]


def _layer(w_ih: int, w_hh: int, mode: int, hidden: int, biases: int, factor: int) -> Formula:
    def formula(call: Call) -> OpCost:
        return rnn_cost(
            _tokens(call.args[0]),
            [call.args[w_ih], call.args[w_hh]],
            int(call.args[hidden]),
            int(call.args[mode]),
            bool(call.args[biases]),
            factor,
        )

    formula.__doc__ = "One oneDNN RNN layer over the whole sequence: gate matmuls plus gate element-wise maths."
    return formula


# mkldnn_rnn_layer(input, w_ih, w_hh, b_ih, b_hh, hx, cx, reverse, batch_sizes, mode, hidden_size,
#                  num_layers, has_biases, ...)
register_op_cost(aten.mkldnn_rnn_layer, category=Category.RNN)(_layer(1, 2, 9, 10, 12, 1))
# mkldnn_rnn_layer_backward(input, w_ih, w_hh, b_ih, b_hh, hx, cx, output, hy, cy, grad_output,
#                           grad_hy, grad_cy, reverse, mode, hidden_size, num_layers, has_biases, ...)
register_op_cost(aten.mkldnn_rnn_layer_backward, category=Category.RNN)(_layer(1, 2, 14, 15, 17, BACKWARD_FACTOR))


def _cudnn(mode: int, hidden: int, reads: tuple[int, ...], backward: bool) -> Formula:
    def formula(call: Call) -> OpCost:
        weights = call.args[1]
        stride0 = int(call.args[2])
        has_biases = len(metas(weights)) > len([w for w in metas(weights) if len(w.shape) == 2])
        # backward: grad input (always) and grad weights (when asked) each cost a forward's matmuls
        factor = (BACKWARD_FACTOR if call.arg(21, "output_mask", [True] * 4)[3] else 1) if backward else 1
        cost = rnn_cost(_tokens(call.args[0]), weights, int(call.args[hidden]), int(call.args[mode]), has_biases,
                        factor, layers=max(1, len(metas(weights)) // stride0))
        # weight_buf (argument 3, and the forward's 5th output) aliases the weights: counted once
        written = call.outputs[:4] if not backward else call.outputs
        return OpCost(flops=cost.flops, macs=cost.macs, bytes_read=sum(nbytes(call.args[i]) for i in reads),
                      bytes_written=sum(m.nbytes for m in written))

    formula.__doc__ = ("cuDNN multi-layer RNN: every 2-D weight matrix meets every token; bytes: inputs, weights, "
                       "states, outputs and the reserve space, once each.")
    return formula


# _cudnn_rnn(input, weight[], weight_stride0, weight_buf, hx, cx, mode, hidden_size, proj_size, num_layers,
#            batch_first, dropout, train, bidirectional, batch_sizes, dropout_state)
#   -> (output, hy, cy, reserve, weight_buf)
register_op_cost(aten._cudnn_rnn, category=Category.RNN)(_cudnn(6, 7, (0, 1, 4, 5), backward=False))
# _cudnn_rnn_backward(input, weight[], stride0, weight_buf, hx, cx, output, grad_output, grad_hy, grad_cy, mode,
#                     hidden_size, proj_size, num_layers, batch_first, dropout, train, bidirectional, batch_sizes,
#                     dropout_state, reserve, output_mask) -> (dx, dhx, dcx, dw[])
register_op_cost(aten._cudnn_rnn_backward, category=Category.RNN)(
    _cudnn(10, 11, (0, 1, 4, 5, 6, 7, 8, 9, 20), backward=True))


def _cell(mode: int, state_index: int, bias_index: int | None, factor: int) -> Formula:
    def formula(call: Call) -> OpCost:
        has_bias = bool(call.arg(bias_index, "bias")) if bias_index is not None else False
        return OpCost(flops=factor * gate_flops(mode, numel(call.args[state_index]), has_bias))

    formula.__doc__ = "Fused CUDA cell: element-wise gate maths per (batch, hidden) unit; matmuls are separate ops."
    return formula


# _thnn_fused_lstm_cell(input_gates, hidden_gates, cx, input_bias, hidden_bias)
register_op_cost(aten._thnn_fused_lstm_cell, category=Category.RNN)(_cell(LSTM, 2, 3, 1))
# _thnn_fused_lstm_cell_backward_impl(grad_hy, grad_cy, cx, cy, workspace, has_bias)
register_op_cost(aten._thnn_fused_lstm_cell_backward_impl, category=Category.RNN)(_cell(LSTM, 2, 5, BACKWARD_FACTOR))
# _thnn_fused_gru_cell(input_gates, hidden_gates, hx, input_bias, hidden_bias)
register_op_cost(aten._thnn_fused_gru_cell, category=Category.RNN)(_cell(GRU, 2, 3, 1))
# _thnn_fused_gru_cell_backward(grad_hy, workspace, has_bias)
register_op_cost(aten._thnn_fused_gru_cell_backward, category=Category.RNN)(_cell(GRU, 0, 2, BACKWARD_FACTOR))

"""Mixture-of-experts layers on shape-only tensors: only the routed top-k experts per token count.

Which experts a token picks depends on values the trace does not have, so the routing is an assumption, stated
under ``rules.moe_routing``: ``uniform`` (default) gives every expert ``tokens x k / E`` of the routed rows;
``--expert-load FILE`` gives expert ``e`` the measured share ``p_e`` (a JSON list of E non-negative numbers,
token counts or shares, or one such list per MoE layer in the order the layers run).

Two implementations are handled, each as the model runs it:

- grouped experts (transformers' ``@use_experts_implementation`` classes: Mixtral, Qwen2-MoE, ... in their
  default ``grouped_mm`` path): every routed (token, expert) row goes through one ``_grouped_mm`` per
  projection, so the FLOPs are k of E by construction (``S = tokens x k`` rows). What the routing changes is
  which experts' weights are read: a step of T tokens reads the experts it hits, ``sum_e 1 - (1 - min(1, k
  p_e))^T`` of them in expectation (``E (1 - (1 - k/E)^T)`` uniform), not all E: the ``_grouped_mm`` rows'
  weight bytes are scaled to that. torch's fake kernel of ``_grouped_mm`` refuses fp32 (the CPU kernel runs
  it), so the recorder uses :func:`fake_grouped_mm`.
- expert lists (``nn.ModuleDict`` / ``nn.ModuleList`` of expert MLPs, e.g. Switch Transformers, top-1): their
  loop picks the tokens of each expert with ``nonzero``, which needs values; during the trace it is replaced
  by the same loop over the assumed load: expert ``e`` gathers its ``n_e`` rows, runs, is weighted and added
  back (``index_add_``), the ``n_e`` summing to ``tokens x k`` (largest remainders). Expert capacity limits
  (Switch's dropped tokens) are not modelled.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from flopcast.features.errors import OptionError
from flopcast.features.records import OpRecord

aten = torch.ops.aten


def fake_grouped_mm(a: torch.Tensor, b: torch.Tensor, offs: torch.Tensor | None = None, bias: Any = None,
                    out_dtype: Any = None) -> Any:
    """Output of ``_grouped_mm`` for any floating dtype, in its three forms (``NotImplemented`` for others).

    ``(S, K) x (E, K, N) -> (S, N)`` (forward, input gradient), ``(K, S) x (S, N) -> (E, K, N)`` with ``offs``
    (weight gradient), ``(E, M, K) x (E, K, N) -> (E, M, N)``.
    """
    if a.dim() == 2 and b.dim() == 3:
        shape = (a.shape[0], b.shape[-1])
    elif a.dim() == 2 and b.dim() == 2 and offs is not None:
        shape = (offs.shape[0], a.shape[0], b.shape[-1])
    elif a.dim() == 3 and b.dim() == 3:
        shape = (a.shape[0], a.shape[1], b.shape[-1])
    else:
        return NotImplemented
    return a.new_empty(shape, dtype=out_dtype or a.dtype)


FAKE_KERNELS = {aten._grouped_mm.default: fake_grouped_mm} if hasattr(aten, "_grouped_mm") else {}
"""Shape functions the recorder runs in place of these ops' fake kernels."""


def read_expert_load(path: str | None) -> list[list[float]] | None:
    """Per-expert token shares from ``--expert-load FILE`` (one list per layer, or one for all), normalised.

    Raises:
        OptionError: unreadable file, not a list of non-negative numbers, or all zero.
    """
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise OptionError(f"--expert-load {path}: cannot read a JSON list ({e})") from None
    layers = data if data and all(isinstance(x, list) for x in data) else [data]
    out = []
    for layer in layers:
        if not isinstance(layer, list) or not layer or not all(
                isinstance(x, (int, float)) and x >= 0 for x in layer) or sum(layer) <= 0:
            raise OptionError(f"--expert-load {path}: expected a list of non-negative numbers per expert "
                              "(or one such list per MoE layer), not all zero")
        out.append([x / sum(layer) for x in layer])
    return out


class Routing:
    """The routing assumption of one trace, and the MoE layers it applies to.

    Args:
        expert_load: the ``--expert-load`` file (``None``: uniform).
    """

    def __init__(self, expert_load: str | None = None) -> None:
        self.loads = read_expert_load(expert_load)
        self.grouped: dict[str, tuple[int, int, list[float]]] = {}  # experts module path -> (E, top-k, shares)

    def shares(self, layer: int, experts: int) -> list[float]:
        """Token shares of MoE layer ``layer`` (0-based, in module order; uniform without a load file).

        Raises:
            OptionError: a load file whose list length is not the layer's expert count.
        """
        if self.loads is None:
            return [1.0 / experts] * experts
        shares = self.loads[layer % len(self.loads)]
        if len(shares) != experts:
            raise OptionError(f"--expert-load lists {len(shares)} experts, the MoE layer has {experts}")
        return shares

    def apply(self, model: torch.nn.Module) -> int:
        """Find the model's MoE experts and prepare them (see the module docstring); returns how many.

        Grouped experts are remembered for :meth:`adjusted`; expert lists get the static routed loop.
        """
        found = 0
        for path, module in model.named_modules():
            experts = _experts_count(module)
            if experts is None:
                continue
            k, shares = _top_k(model, module), self.shares(found, experts)
            if isinstance(module, (torch.nn.ModuleDict, torch.nn.ModuleList)):
                module.forward = _RoutedLoop(module, k, shares)
            else:
                self.grouped[path] = (experts, k, shares)
            found += 1
        return found


    def adjusted(self, records: list[OpRecord]) -> list[OpRecord]:
        """``records`` with each grouped-experts ``_grouped_mm`` reading the weights of the experts it hits only."""
        out = []
        for o in records:
            where = self.grouped.get(o.module)
            if where is None or not o.op.startswith("aten._grouped_mm") or len(o.inputs) < 2 or \
                    len(o.inputs[1].shape) != 3:
                out.append(o)
                continue
            experts, k, shares = where
            weight = o.inputs[1].nbytes
            hit = hit_experts(k, max(1, o.inputs[0].shape[0] // k), shares)
            out.append(replace(o, bytes_read=o.bytes_read - weight + round(weight * hit / experts)))
        return out


def hit_experts(k: int, tokens: int, shares: list[float]) -> float:
    """Expected experts whose weights a step of ``tokens`` tokens reads, each token picking ``k`` by ``shares``."""
    return sum(1.0 - (1.0 - min(1.0, k * p)) ** tokens for p in shares)


def _experts_count(module: torch.nn.Module) -> int | None:
    """E of an MoE experts module: ``num_experts`` of a module named like one (``*Experts``), else ``None``."""
    n = getattr(module, "num_experts", None)
    if not isinstance(n, int) or n < 1 or not type(module).__name__.endswith("Experts"):
        return None
    return n


def _top_k(model: torch.nn.Module, experts: torch.nn.Module) -> int:
    """Experts per token of an MoE layer: its config's ``num_experts_per_tok`` / ``top_k``, else 1 (Switch)."""
    for holder in (experts, getattr(experts, "config", None), getattr(model, "config", None)):
        for name in ("num_experts_per_tok", "top_k", "moe_topk"):
            value = getattr(holder, name, None)
            if isinstance(value, int) and value >= 1:
                return value
    return 1


def routed_counts(rows: int, shares: list[float]) -> list[int]:
    """``rows`` routed rows split over experts by ``shares``: largest remainders, summing to ``rows`` exactly."""
    raw = [rows * p for p in shares]
    counts = [math.floor(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[: rows - sum(counts)]:
        counts[i] += 1
    return counts


class _RoutedLoop:
    """An expert list's forward over the assumed load: gather each expert's rows, run it, weight, add back."""

    def __init__(self, experts: torch.nn.Module, k: int, shares: list[float]) -> None:
        self.experts, self.k, self.shares = experts, k, shares

    def __call__(self, hidden_states: torch.Tensor, selected: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(hidden_states)
        flat = weights.reshape(hidden_states.shape[0], -1)
        members = list(self.experts.values()) if isinstance(self.experts, torch.nn.ModuleDict) else list(self.experts)
        counts = routed_counts(hidden_states.shape[0] * self.k, self.shares)
        for expert, rows in zip(members, counts, strict=True):
            if rows == 0:
                continue
            index = torch.arange(rows, device=hidden_states.device) % hidden_states.shape[0]
            y = expert(hidden_states[index]) * flat[index, :1]
            out.index_add_(0, index, y.to(out.dtype))
        return out

"""The model as one GPU of a parallel run holds it, and the shapes its collectives move.

Megatron-style tensor-parallel surgery, the layer stack that pipeline stages split, and the calls of the modules
whose outputs are communicated, recorded while the step is traced.

Tensor parallelism (Megatron-LM, Shoeybi et al. 2019) splits each transformer block's two linear pairs: the first
linear(s) of a pair by output columns (attention's query/key/value, the MLP's up projection), the second by input
rows (attention's output projection, the MLP's down projection), so each GPU holds ``1/tp`` of their weights and
of the heads between them, and the pair needs one all-reduce of its output in the forward and one of its input's
gradient in the backward. A word embedding tied to (or sized like) the LM head is split by vocabulary rows, the
head by its vocabulary columns. Pairs are found by the names models give these layers (GPT-2, BERT, Llama, OPT,
GPT-NeoX, T5) and, in a model using none of them, as consecutive linears of one container whose widths chain
(a plain MLP). The surgery replaces those modules by narrower ones of the same class on the meta device and
divides the head counts of the attention modules above them; the traced step is then one GPU's step exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from flopcast.predictor.parallel.plan import ParallelError

COLUMN_NAMES = ("c_attn", "q_proj", "k_proj", "v_proj", "query", "key", "value", "query_key_value", "qkv_proj",
                "Wqkv", "qkv", "c_fc", "fc1", "up_proj", "gate_proj", "gate_up_proj", "dense_h_to_4h", "w1", "w3",
                "wi", "wi_0", "wi_1", "intermediate.dense", "q", "k", "v")
"""Last name components (or the last two) of column-parallel linears."""
ROW_NAMES = ("c_proj", "o_proj", "out_proj", "dense_4h_to_h", "fc2", "down_proj", "w2", "wo", "output.dense",
             "attention.dense", "o")
"""Last name components (or the last two) of row-parallel linears."""
HEAD_ATTRS = ("num_heads", "n_head", "n_heads", "num_attention_heads", "num_key_value_heads", "num_kv_heads",
              "n_kv_heads")
"""Attributes of an attention module holding head counts, divided by the tensor-parallel degree."""
WIDTH_ATTRS = ("split_size", "all_head_size", "inner_dim")
"""Attributes of an attention module holding the width of its heads together, divided likewise."""
LM_HEAD_NAMES = ("lm_head", "embed_out", "output", "head", "cls.predictions.decoder", "decoder")
"""Names of a language model's output projection over the vocabulary."""


@dataclass(frozen=True)
class TensorParallelPair:
    """A column-parallel group of linears and the row-parallel linear after it.

    Attributes:
        columns: module paths of the column-parallel linears (one input, outputs split).
        row: module path of the row-parallel linear (input split, output all-reduced).
        attention: module paths whose head counts were divided.
    """

    columns: tuple[str, ...]
    row: str
    attention: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """The first call of a module in the traced step.

    Attributes:
        in_shape: shape of its first tensor input.
        in_bytes: bytes of that input.
        in_requires_grad: whether that input needs a gradient (its backward all-reduce happens).
        out_shape: shape of its first tensor output.
        out_bytes: bytes of that output.
    """

    in_shape: tuple[int, ...]
    in_bytes: int
    in_requires_grad: bool
    out_shape: tuple[int, ...]
    out_bytes: int


@dataclass(frozen=True)
class Param:
    """One parameter of the GPU's model (tied parameters once).

    Attributes:
        name: its dotted name.
        module: path of the first module owning it.
        numel: elements.
        itemsize: bytes per element.
        trainable: whether it receives a gradient.
        shared_with: other modules using it (a word embedding tied to the LM head).
    """

    name: str
    module: str
    numel: int
    itemsize: int
    trainable: bool
    shared_with: tuple[str, ...] = ()

    @property
    def bytes(self) -> int:
        """Bytes of the parameter (and of its gradient)."""
        return self.numel * self.itemsize


@dataclass
class ShardRecord:
    """What the surgery did and what the traced step showed, filled while the model is built and traced.

    Attributes:
        tp: tensor-parallel degree applied.
        pairs: the tensor-parallel pairs.
        vocab: ``(embedding, head)`` module paths split by vocabulary (``None``: not split).
        stack: module path of the layer stack (``None``: not looked for or none), with its layer count.
        params: the GPU's parameters in ``model.parameters()`` order.
        calls: first call of each watched module.
        units: parameters of each stack layer and of the rest (FSDP's wrapping units), bytes.
    """

    tp: int = 1
    pairs: list[TensorParallelPair] = field(default_factory=list)
    vocab: tuple[str, str] | None = None
    stack: tuple[str, int] | None = None
    params: list[Param] = field(default_factory=list)
    calls: dict[str, Call] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)


def _linear_dims(m: torch.nn.Module) -> tuple[int, int] | None:
    """``(in, out)`` features of a linear-like module (``nn.Linear`` or Hugging Face's ``Conv1D``), else ``None``."""
    if isinstance(m, torch.nn.Linear):
        return m.in_features, m.out_features
    if type(m).__name__ == "Conv1D" and hasattr(m, "nf") and hasattr(m, "nx"):
        return int(m.nx), int(m.nf)
    return None


def _resized(m: torch.nn.Module, in_f: int, out_f: int) -> torch.nn.Module:
    """A module of ``m``'s class with other widths (on the current default device)."""
    if isinstance(m, torch.nn.Linear):
        new: torch.nn.Module = torch.nn.Linear(in_f, out_f, bias=m.bias is not None, dtype=m.weight.dtype)
    else:
        new = type(m)(out_f, in_f)
    for p_new, p_old in zip(new.parameters(), m.parameters(), strict=False):
        p_new.requires_grad_(p_old.requires_grad)
    return new


def _matches(name: str, names: tuple[str, ...]) -> bool:
    parts = name.split(".")
    return parts[-1] in names or ".".join(parts[-2:]) in names


def _set(model: torch.nn.Module, path: str, module: torch.nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def find_pairs(model: torch.nn.Module) -> list[tuple[list[str], str]]:
    """Column/row pairs of a model, by layer names or, failing that, by chaining widths (see the module doc)."""
    linears = [(n, d) for n, m in model.named_modules() if n and (d := _linear_dims(m)) is not None]
    pairs: list[tuple[list[str], str]] = []
    pending: list[str] = []
    for name, _ in linears:
        if _matches(name, ROW_NAMES) and pending:
            pairs.append((pending, name))
            pending = []
        elif _matches(name, COLUMN_NAMES) and not _matches(name, ROW_NAMES):
            if pending and pending[-1].rpartition(".")[0] != name.rpartition(".")[0]:
                pending = []  # a column linear no row-parallel one followed: left whole
            pending.append(name)
    if pairs:
        return pairs
    for container in model.modules():  # a model without those names: consecutive linears whose widths chain
        children = [(n, _linear_dims(m)) for n, m in container.named_children()]
        prefix = next((n for n, m in model.named_modules() if m is container), "")
        i = 0
        lin = [(n, d) for n, d in children if d is not None]
        while i + 1 < len(lin):
            (a, da), (b, db) = lin[i], lin[i + 1]
            if da[1] == db[0]:
                pairs.append(([f"{prefix}.{a}".lstrip(".")], f"{prefix}.{b}".lstrip(".")))
                i += 2
            else:
                i += 1
    return pairs


def _divide_heads(model: torch.nn.Module, path: str, tp: int) -> bool:
    """Divide the head counts and head widths of one attention module; whether it held any.

    Raises:
        ParallelError: ``tp`` does not divide a head count.
    """
    m = model.get_submodule(path) if path else model
    found = False
    for attr in (*HEAD_ATTRS, *WIDTH_ATTRS):
        value = getattr(m, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            if value % tp:
                what = "heads" if attr in HEAD_ATTRS else f"{attr}"
                where = path or "the model"
                raise ParallelError(f"tensor-parallel degree {tp} does not divide the {value} {what} of {where}")
            setattr(m, attr, value // tp)
            found = True
    return found


def tensor_parallel(model: torch.nn.Module, tp: int, record: ShardRecord) -> torch.nn.Module:
    """Replace the model's tensor-parallel layers by one GPU's shard of them (on the current default device).

    Raises:
        ParallelError: a width or head count ``tp`` does not divide, or a model without linear pairs.
    """
    record.tp = tp
    if tp == 1:
        return model
    pairs = find_pairs(model)
    if not pairs:
        raise ParallelError("tensor parallelism needs pairs of linear layers (a column-parallel one, then a "
                            "row-parallel one); this model has none")
    for columns, row in pairs:
        parents = sorted({c.rpartition(".")[0] for c in columns})
        attention = tuple(p for p in parents if _divide_heads(model, p, tp))  # heads first: the clearer message
        in_row, out_row = _linear_dims(model.get_submodule(row))
        for c in columns:
            in_c, out_c = _linear_dims(model.get_submodule(c))
            if out_c % tp:
                raise ParallelError(f"tensor-parallel degree {tp} does not divide the {out_c} output features of {c}")
            _set(model, c, _resized(model.get_submodule(c), in_c, out_c // tp))
        if in_row % tp:
            raise ParallelError(f"tensor-parallel degree {tp} does not divide the {in_row} input features of {row}")
        _set(model, row, _resized(model.get_submodule(row), in_row // tp, out_row))
        record.pairs.append(TensorParallelPair(tuple(columns), row, attention))
    record.vocab = _vocab_parallel(model, tp)
    return model


def _vocab_parallel(model: torch.nn.Module, tp: int) -> tuple[str, str] | None:
    """Split the word embedding and the LM head over the vocabulary (Megatron pads it to a multiple of ``tp``)."""
    heads = [(n, m) for n, m in model.named_modules() if n and _matches(n, LM_HEAD_NAMES) and _linear_dims(m)]
    for head_name, head in heads:
        h_in, vocab = _linear_dims(head)
        for emb_name, emb in model.named_modules():
            if not isinstance(emb, torch.nn.Embedding) or emb.num_embeddings != vocab or emb.embedding_dim != h_in:
                continue
            tied = getattr(head, "weight", None) is emb.weight
            rows = math.ceil(vocab / tp)
            new_emb = torch.nn.Embedding(rows, h_in, padding_idx=None, dtype=emb.weight.dtype)
            _set(model, emb_name, new_emb)
            new_head = _resized(head, h_in, rows)
            if tied:
                new_head.weight = new_emb.weight
            _set(model, head_name, new_head)
            return emb_name, head_name
    return None


def find_stack(model: torch.nn.Module) -> tuple[str, int] | None:
    """The layer stack pipeline stages split (``None``: none).

    The ``ModuleList`` / ``Sequential`` with the most children among those holding at least half the parameters.
    """
    total = sum(p.numel() for p in model.parameters()) or 1
    best: tuple[str, int] | None = None
    for name, m in model.named_modules():
        if not isinstance(m, torch.nn.ModuleList | torch.nn.Sequential) or len(m) < 2:
            continue
        held = sum(p.numel() for p in m.parameters())
        if held * 2 >= total and (best is None or len(m) > best[1]):
            best = (name, len(m))
    return best


def watch(model: torch.nn.Module, record: ShardRecord, paths: list[str]) -> None:
    """Record the first call of each module in ``paths`` while the step is traced (forward hooks)."""
    def first_tensor(x: Any) -> torch.Tensor | None:
        if isinstance(x, torch.Tensor):
            return x
        if isinstance(x, tuple | list):
            return next((t for t in (first_tensor(i) for i in x) if t is not None), None)
        return getattr(x, "last_hidden_state", None) if not isinstance(x, dict) else None

    def hook(name: str) -> Callable[..., None]:
        def on_call(_: torch.nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if name in record.calls:
                return
            x, y = first_tensor(args), first_tensor(out)
            if x is None or y is None:
                return
            record.calls[name] = Call(tuple(x.shape), x.numel() * x.element_size(), bool(x.requires_grad),
                                      tuple(y.shape), y.numel() * y.element_size())
        return on_call

    for p in paths:
        model.get_submodule(p).register_forward_hook(hook(p))


def sharded_builder(build: Callable[[], torch.nn.Module], tp: int, record: ShardRecord, stack: bool
                    ) -> Callable[[], torch.nn.Module]:
    """A builder of one GPU's model: ``build``'s model after :func:`tensor_parallel`, with its calls watched.

    Args:
        build: the model's builder (called under the meta device by the tracer).
        tp: tensor-parallel degree.
        record: filled with the surgery, the parameters, the stack and the watched calls.
        stack: also find the layer stack and watch its layers (pipeline stages, FSDP units).
    """
    def built() -> torch.nn.Module:
        model = tensor_parallel(build(), tp, record)
        watched = [p for pair in record.pairs for p in (*pair.columns, pair.row)]
        if record.vocab is not None:
            watched += list(record.vocab)
        found = find_stack(model) if stack else None
        if found is not None:
            record.stack = found
            prefix = f"{found[0]}." if found[0] else ""
            watched += [f"{prefix}{i}" for i in range(found[1])]
        names = {id(p): n for n, p in model.named_parameters()}
        owners: dict[int, list[str]] = {}
        for mod, m in model.named_modules():
            for p in m.parameters(recurse=False):
                owners.setdefault(id(p), []).append(mod)
        record.params = [Param(names[id(p)], owners[id(p)][0], p.numel(), p.element_size(), p.requires_grad,
                               tuple(owners[id(p)][1:])) for p in model.parameters()]
        record.units = _units(record.params, found)
        watch(model, record, list(dict.fromkeys(watched)))
        return model

    return built


def layer_of(path: str, stack: tuple[str, int] | None) -> int | None:
    """Index of the stack layer a module path lies in (``None``: outside the stack)."""
    if stack is None:
        return None
    head = f"{stack[0]}." if stack[0] else ""
    if not path.startswith(head):
        return None
    first = path[len(head):].split(".")[0]
    return int(first) if first.isdigit() and int(first) < stack[1] else None


def _units(params: list[Param], stack: tuple[str, int] | None) -> dict[str, int]:
    """FSDP's units as a transformer auto-wrap policy makes them: one per stack layer, the rest in the root unit."""
    units: dict[str, int] = {}
    for p in params:
        layer = layer_of(p.module, stack)
        key = f"layer {layer}" if layer is not None else "root"
        units[key] = units.get(key, 0) + p.bytes
    return units

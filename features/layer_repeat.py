"""The analysis of a deep stack of identical layers, composed exactly from traces of 3, 4 and 5 layers.

A Llama-7B train step records about 8,400 ops, 261 per decoder layer; tracing all 32 layers under fake
tensors takes seconds, and a ``--max-batch`` search traces it several times. The layers are alike, so the
step with ``n`` layers is the step with ``m`` layers plus ``n - m`` more copies of what one more layer
adds: the records of its last middle layer (module paths renumbered; forward runs ascending, backward
runs descending), the ops outside the stack that come once per layer (a per-layer cache entry), the
tensors one layer adds to the multi-tensor optimizer ops (``_foreach_*`` take one tensor per parameter,
with FLOPs and bytes to match), and the per-layer step of params; peak memory comes from the per-op
live-byte timelines of the traces (see :class:`_Extension`), so a peak that moves with depth is followed.

Nothing is assumed: the 3- and 4-layer traces must compose into the 5-layer trace exactly, record for
record (op, shapes, cost, module, order) with the same params and peak memory; only then is the 4- and
5-layer pair extended to ``n`` layers. Otherwise :func:`compose_layers` returns ``None`` and the caller
traces every layer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from difflib import SequenceMatcher

import numpy as np

from flopcast.features.analysis import Analysis, MemoryEstimate
from flopcast.features.records import OpRecord, TensorMeta

PROBE_LAYERS = (3, 4, 5)
"""Layer counts traced to compose a deeper stack: the first two must compose the third exactly."""

MIN_LAYERS = 16
"""Stacks shallower than this are traced whole (the probes, 12 layers in all, would save little)."""

_NUMERIC = ("flops", "macs", "bytes_read", "bytes_written")
_INDEX = re.compile(r"\d+")


class _NoPattern(Exception):
    """The two analyses do not differ by one repeated layer."""


def _key(o: OpRecord) -> tuple:
    """Everything that makes two records the same op at the same place, except their position."""
    return (o.op, o.category, o.phase, o.module, o.inputs, o.outputs, o.flops, o.macs, o.bytes_read,
            o.bytes_written, o.outcome, o.framework, o.python_call, repr(sorted(o.attrs.items())))


def _stack_candidates(a: Analysis) -> dict[str, set[int]]:
    """Module prefixes followed by an integer component (a ModuleList), with the indices seen."""
    seen: dict[str, set[int]] = {}
    for module in {o.module for o in a.ops}:
        parts = module.split(".")
        for i, part in enumerate(parts):
            if _INDEX.fullmatch(part):
                seen.setdefault(".".join(parts[:i]), set()).add(int(part))
    return seen


def find_stack(probes: dict[int, Analysis]) -> str | None:
    """The one module prefix whose indices are exactly ``range(n)`` in the probe of ``n`` layers, if any."""
    found: set[str] | None = None
    for n, a in probes.items():
        matching = {p for p, idx in _stack_candidates(a).items() if idx == set(range(n))}
        found = matching if found is None else found & matching
    return next(iter(found)) if found and len(found) == 1 else None


def _layer_of(module: str, stack: str) -> int | None:
    head = stack + "."
    if not module.startswith(head):
        return None
    index = module[len(head):].split(".", 1)[0]
    return int(index) if _INDEX.fullmatch(index) else None


def _renumbered(o: OpRecord, stack: str, layer: int) -> OpRecord:
    head = stack + "."
    rest = o.module[len(head):].split(".", 1)
    return replace(o, module=head + str(layer) + (f".{rest[1]}" if len(rest) > 1 else ""))


def _growth_plan(small: Sequence, large: Sequence, k: int, replaced_ok: bool = False
                 ) -> list[tuple[int, int, bool]]:
    """How ``large`` grows by ``k`` more of what it adds to ``small``, as ``(j, i, grown)`` in output order.

    ``j`` is a position in ``large``; ``i`` the position in ``small`` of the same element (``-1`` for an
    element ``large`` adds, repeated ``k`` more times); ``grown`` marks an element that differs from its
    counterpart in ``small`` (an op that takes one more set of tensors per layer). One added run (a
    layer's parameters in a per-parameter loop) is found by the longest common prefix, unambiguous where
    the run resembles its neighbours; several runs by a sequence alignment.

    Raises:
        _NoPattern: when ``large`` is not ``small`` with runs added (and, if allowed, equal-length
            stretches replaced).
    """
    d = len(large) - len(small)
    if d < 0:
        raise _NoPattern
    p = 0
    while p < len(small) and small[p] == large[p]:
        p += 1
    if list(small[p:]) == list(large[p + d:]):
        added = [(j, -1, False) for j in range(p, p + d)]
        return [*((j, j, False) for j in range(p)), *added * (k + 1),
                *((j, j - d, False) for j in range(p + d, len(large)))]
    plan: list[tuple[int, int, bool]] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, small, large, autojunk=False).get_opcodes():
        if tag == "equal":
            plan += [(j, i1 + j - j1, False) for j in range(j1, j2)]
        elif tag == "insert":
            plan += [(j, -1, False) for j in range(j1, j2)] * (k + 1)
        elif tag == "replace" and replaced_ok and i2 - i1 == j2 - j1:
            plan += [(j, i1 + j - j1, True) for j in range(j1, j2)]
        else:
            raise _NoPattern
    return plan


def _grown_sequence(small: Sequence, large: Sequence, k: int) -> tuple:
    """``large`` with each run it adds to ``small`` repeated ``k`` more times in place."""
    return tuple(large[j] for j, _, _ in _growth_plan(small, large, k))


def _grown_op(small: OpRecord, large: OpRecord, k: int) -> OpRecord:
    """An op outside the stack that takes one more set of tensors per layer (a ``_foreach_*`` op)."""
    if (small.op, small.phase, small.category, small.module) != (large.op, large.phase, large.category,
                                                                  large.module):
        raise _NoPattern
    inputs: tuple[TensorMeta, ...] = _grown_sequence(small.inputs, large.inputs, k)
    outputs: tuple[TensorMeta, ...] = _grown_sequence(small.outputs, large.outputs, k)
    step = {f: getattr(large, f) - getattr(small, f) for f in _NUMERIC}
    return replace(large, inputs=inputs, outputs=outputs, **{f: getattr(large, f) + k * step[f] for f in _NUMERIC})


def _direction(ops: Sequence[OpRecord], start: int, stack: str, template: int) -> int:
    """+1 where the run of the template layer at ``start`` follows lower layers (forward order), else -1."""
    for i in range(start - 1, -1, -1):
        layer = _layer_of(ops[i].module, stack)
        if layer is not None and layer != template:
            return 1 if layer < template else -1
    for o in ops[start:]:
        layer = _layer_of(o.module, stack)
        if layer is not None and layer != template:
            return 1 if layer > template else -1
    return 1


class _Extension:
    """``large`` (``n`` layers) extended by ``k`` layers, knowing ``small`` (``n - 1`` layers).

    Ops: the last middle layer of ``large`` (the template) is copied ``k`` times; ops outside the stack
    grow as :func:`_growth_plan` says. Memory: every op of ``large`` other than the template's keeps its
    place in the step, so its live bytes (by kind) grow ``k`` times by their difference to the same op in
    ``small`` (for ops ``large`` adds outside the stack, that of the nearest op before them). An op of
    the template layer, index ``t`` in a model of ``L`` layers, sees live bytes ``A + alpha L + beta t``:
    ``alpha`` from the same op of the layer before the template in both analyses, ``beta`` from the
    template and the layer before it in ``large``.
    """

    def __init__(self, small: Analysis, large: Analysis, n: int, k: int, stack: str) -> None:
        self.small, self.large, self.k, self.stack = small, large, k, stack
        self.template = n - 2
        if self.template < 2:
            raise _NoPattern
        self.layers_small = self._positions(small, n - 1)
        self.layers_large = self._positions(large, n)
        self.counterpart: dict[int, int] = {}  # position in large -> same op's position in small
        for x in range(self.template):
            self._pair(self.layers_large[x], self.layers_small[x])
        self._pair(self.layers_large[n - 1], self.layers_small[n - 2])
        self.emitted_outside = self._outside()

    def _positions(self, a: Analysis, n: int) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {x: [] for x in range(n)}
        for i, o in enumerate(a.ops):
            layer = _layer_of(o.module, self.stack)
            if layer is not None:
                if layer not in out:
                    raise _NoPattern
                out[layer].append(i)
        return out

    def _pair(self, large: list[int], small: list[int]) -> None:
        if len(large) != len(small):
            raise _NoPattern
        self.counterpart.update(zip(large, small, strict=True))

    def _outside(self) -> dict[int, list[OpRecord]]:
        """The grown ops outside the stack to emit at each outside position of ``large``.

        Each goes where its source op is; the repeats of an added run go right after the run's last op.
        """
        small_at = [i for i, o in enumerate(self.small.ops) if _layer_of(o.module, self.stack) is None]
        large_at = [i for i, o in enumerate(self.large.ops) if _layer_of(o.module, self.stack) is None]
        emitted: dict[int, list[OpRecord]] = {i: [] for i in large_at}
        last = -1
        for phase in dict.fromkeys(self.large.ops[i].phase for i in (*large_at, *small_at)):
            ps = [i for i in small_at if self.small.ops[i].phase is phase]
            pl = [i for i in large_at if self.large.ops[i].phase is phase]
            plan = _growth_plan([_key(self.small.ops[i]) for i in ps], [_key(self.large.ops[j]) for j in pl],
                                self.k, replaced_ok=True)
            for j, i, grown in plan:
                o = self.large.ops[pl[j]]
                if i >= 0:
                    self.counterpart[pl[j]] = ps[i]
                last = max(last, pl[j])
                emitted[last].append(_grown_op(self.small.ops[ps[i]], o, self.k) if grown else o)
        return emitted

    def ops(self) -> tuple[list[OpRecord], list[tuple[int, int]]]:
        """The extended op list, with each op's source.

        The source is the op's position in ``large`` and its copy number: 0 for the op itself, ``t`` for
        the ``t``-th copy of a template-layer op.
        """
        large, stack, template, k = self.large.ops, self.stack, self.template, self.k
        ops: list[OpRecord] = []
        source: list[tuple[int, int]] = []
        i = 0
        while i < len(large):
            layer = _layer_of(large[i].module, stack)
            if layer is None:
                for o in self.emitted_outside[i]:
                    ops.append(o)
                    source.append((i, 0))
                i += 1
                continue
            if layer != template:
                ops.append(_renumbered(large[i], stack, layer + k) if layer > template else large[i])
                source.append((i, 0))
                i += 1
                continue
            end = i
            while end < len(large) and _layer_of(large[end].module, stack) == template:
                end += 1
            copies = list(range(1, k + 1))
            order = [0, *copies] if _direction(large, i, stack, template) > 0 else [*reversed(copies), 0]
            for t in order:
                ops.extend(large[j] if t == 0 else _renumbered(large[j], stack, template + t) for j in range(i, end))
                source.extend((j, t) for j in range(i, end))
            i = end
        return ops, source

    def memory(self, source: list[tuple[int, int]]) -> MemoryEstimate | None:
        """Peak memory of the extended step from the two timelines (see the class docstring)."""
        ms, ml = self.small.memory, self.large.memory
        if ms is None or ml is None:
            if ms is not ml:
                raise _NoPattern
            return None
        if not ml.live_by_op_bytes or len(ml.live_by_op_bytes) != len(self.large.ops) \
                or len(ms.live_by_op_bytes) != len(self.small.ops):
            raise _NoPattern
        live_s, live_l = np.array(ms.live_by_op_bytes, np.int64), np.array(ml.live_by_op_bytes, np.int64)
        step = np.zeros_like(live_l)
        known = np.zeros(len(live_l), bool)
        for j, i in self.counterpart.items():
            step[j], known[j] = live_l[j] - live_s[i], True
        beta = np.zeros_like(live_l)
        tmpl, before = self.layers_large[self.template], self.layers_large[self.template - 1]
        if len(tmpl) != len(before):
            raise _NoPattern
        step[tmpl] = live_l[before] - live_s[self.layers_small[self.template - 1]]  # alpha: one more layer
        beta[tmpl] = live_l[tmpl] - live_l[before]  # one layer further up the stack
        known[tmpl] = True
        # ops added outside the stack: the step of the nearest known op before them (after, at the start)
        known_at = np.flatnonzero(known)
        step = step[known_at[np.maximum(np.searchsorted(known_at, np.arange(len(known)), side="right") - 1, 0)]]
        src = np.array([j for j, _ in source], np.int64)
        copy = np.array([t for _, t in source], np.int64)
        live = live_l[src] + self.k * step[src] + copy[:, None] * beta[src]
        start_l, start_s = np.array(ml.start_bytes, np.int64), np.array(ms.start_bytes, np.int64)
        start = start_l + self.k * (start_l - start_s)
        totals = live.sum(axis=1)
        kinds = list(ml.breakdown_bytes)
        at = int(np.argmax(totals)) if len(totals) else -1
        if at < 0 or totals[at] <= start.sum():
            peak, index = start, -1
        else:
            peak, index = live[at], at
        return MemoryEstimate(int(peak.sum()), dict(zip(kinds, map(int, peak), strict=True)), index,
                              start_bytes=tuple(map(int, start)), live_by_op_bytes=tuple(map(tuple, live.tolist())))


def _extend(small: Analysis, large: Analysis, n_large: int, k: int, stack: str) -> Analysis:
    """``large`` (``n_large`` layers; ``small`` has one fewer) with ``k`` more layers.

    Raises:
        _NoPattern: when ``large`` is not ``small`` plus one layer of the kinds this module composes.
    """
    ext = _Extension(small, large, n_large, k, stack)
    ops, source = ext.ops()
    return Analysis(
        tuple(replace(o, index=j) for j, o in enumerate(ops)), large.target,
        params=large.params + k * (large.params - small.params),
        trainable_params=large.trainable_params + k * (large.trainable_params - small.trainable_params),
        memory=ext.memory(source),
    )


def _same(x: Analysis, y: Analysis) -> bool:
    return ([_key(o) for o in x.ops] == [_key(o) for o in y.ops] and x.memory == y.memory
            and (x.params, x.trainable_params) == (y.params, y.trainable_params))


def compose_layers(probes: dict[int, Analysis], n_layers: int) -> Analysis | None:
    """The analysis of the same model with ``n_layers`` stack layers, from analyses with 3, 4 and 5.

    Args:
        probes: analyses of the model with three consecutive layer counts, at least 3
            (:data:`PROBE_LAYERS`), same inputs and step.
        n_layers: layers of the model to analyse (at least the largest probe).

    Returns:
        The composed analysis, its target's ``layers_traced`` naming the probes; ``None`` when the two
        smaller probes do not compose the largest one exactly (ops, order, params and peak memory).
    """
    counts = sorted(probes)
    if len(counts) != 3 or counts != list(range(counts[0], counts[0] + 3)) or counts[0] < 3 \
            or n_layers < counts[2]:
        return None
    stack = find_stack(probes)
    if stack is None:
        return None
    a, b, c = (probes[n] for n in counts)
    try:
        if not _same(_extend(a, b, counts[1], 1, stack), c):
            return None
        out = _extend(b, c, counts[2], n_layers - counts[2], stack)
    except _NoPattern:
        return None
    return replace(out, target=replace(c.target, layers_traced=tuple(counts)))

"""``--mode generate``: the prefill and decode steps of ``model.generate()`` traced on shape-only tensors.

A request (``GenerateOptions``: batch B, prompt P, N new tokens, greedy) runs the prefill forward over the
prompt and N - 1 decode forwards of one token each, the KV cache growing from P to P + N - 1 tokens. Each
step traced here is what ``generate()`` runs for it: the model's forward with the cache (its ``cache`` or
``past_key_values`` argument, ``logits_to_keep=1`` where the forward takes it, as ``generate()`` passes it;
for a transformers 5 model through its own ``prepare_inputs_for_generation`` and
``_update_model_kwargs_for_generation``, so a static cache's 4-D mask and the position ids are built as
``generate()`` builds them) and the greedy token choice of transformers' ``_sample`` loop (last logits to
fp32, the two EOS masks of ``min_new_tokens``, argmax, the ids concatenation, the stopping checks). Before a
decode step at cache length t, an untraced forward over t tokens fills the cache, so the cache has exactly the layers,
shapes and dtypes the model gives it (grouped-query attention: its KV heads; sliding windows; a static
cache allocated for P + N - 1 tokens); the cache tensors count as the step's inputs in its memory.

Only a few decode steps are traced (:func:`adaptive_points`: the first and the last, then the middle of any
segment whose middle departs from the straight line by more than ``GenerateOptions.tolerance``); the other
steps are interpolated linearly between them (:func:`interpolated_sum`). FLOPs and bytes of a decode step
are linear in the cache length for a dynamic cache, so two traces give every step exactly; the predicted
time is not (the op model bends where a cache outgrows a cache level), which is what the refinement is for.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig
from flopcast.features.generate_options import GenerateError, GenerateOptions
from flopcast.features.records import Phase
from flopcast.features.step import NO_EVENTS, StepEvents, StepParts, autocast_context
from flopcast.features.step_options import StepOptions

CACHE_ARGUMENTS = ("cache", "past_key_values")
"""Names of the KV-cache argument of a causal LM's forward (transformers 5 calls it ``cache``)."""
POSITION_FIELDS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
"""Config fields that bound the positions a model can attend to."""


def cache_argument(model: torch.nn.Module, target: str) -> str:
    """The name of ``model``'s KV-cache forward argument.

    Raises:
        GenerateError: the forward takes no KV cache (not a causal LM with a cache: BERT, a CNN).
    """
    params = inspect.signature(model.forward).parameters
    for name in CACHE_ARGUMENTS:
        if name in params:
            return name
    raise GenerateError(f"--mode generate: {target} ({type(model).__name__}) has no KV-cache forward (its forward "
                        f"takes no {' or '.join(CACHE_ARGUMENTS)}); generation needs a causal LM with a KV cache")


def max_positions(model: torch.nn.Module) -> int | None:
    """The most positions ``model`` can attend to, from its config (``None``: the config does not say)."""
    config = getattr(model, "config", None)
    for name in POSITION_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_positions(model: torch.nn.Module, options: GenerateOptions, target: str) -> None:
    """Refuse a request longer than the model's positions.

    Raises:
        GenerateError: ``P + N`` exceeds the model's position limit.
    """
    limit = max_positions(model)
    if limit is not None and options.total_len > limit:
        raise GenerateError(f"--mode generate: prompt {options.prompt_len} + {options.new_tokens} new tokens = "
                            f"{options.total_len} positions, but {target} has {limit} (its config's position "
                            "limit): shorten --prompt-len or --new-tokens")


@dataclass
class CacheReport:
    """The KV cache a traced step leaves, read from the trace.

    Attributes:
        bytes: bytes of the cache's tensors after the step.
        tokens: tokens per sequence the cache holds after the step.
        layers: cache layers (tensor pairs) counted.
        batch_size: sequences in the batch.
        model_layers: the model's stack depth (0: unknown). A deep stack is composed from traces of a few layers
            (:func:`flopcast.features.api.trace_target`), whose cache holds only those layers': its bytes are
            scaled to the whole stack.
    """

    bytes: int = 0
    tokens: int = 0
    layers: int = 0
    batch_size: int = 1
    model_layers: int = 0

    @property
    def bytes_per_token(self) -> float:
        """Cache bytes per token of one sequence, all layers of the model, B (0 when the cache is empty)."""
        if not (self.tokens and self.batch_size):
            return 0.0
        scale = self.model_layers / self.layers if self.layers and self.model_layers > self.layers else 1.0
        return self.bytes * scale / (self.tokens * self.batch_size)


def cache_tensors(cache: Any) -> list[torch.Tensor]:
    """The key / value tensors of a KV cache, in order.

    A transformers ``Cache`` gives its layers' ``keys`` / ``values``; nested tuples of tensors (the legacy form)
    their tensors.
    """
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [t for layer in layers for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
                if isinstance(t, torch.Tensor) and t.numel()]
    found: list[torch.Tensor] = []
    stack = [cache]
    while stack:
        x = stack.pop(0)
        if isinstance(x, torch.Tensor):
            found.append(x)
        elif isinstance(x, (list, tuple)):
            stack[:0] = list(x)
    return found


def _storage_bytes(tensors: Sequence[torch.Tensor]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[id(st)] = st.nbytes()
    return sum(seen.values())


class KVForward:
    """Calls a causal LM's forward as ``generate()`` does: ids, the cache, ``use_cache``, ``logits_to_keep=1``.

    Args:
        model: the model.
        target: the target string, for messages.
    """

    def __init__(self, model: torch.nn.Module, target: str) -> None:
        self.model = model
        self.cache_arg = cache_argument(model, target)
        self.params = inspect.signature(model.forward).parameters
        self.use_cache = "use_cache" in self.params
        self.logits_to_keep = "logits_to_keep" in self.params

    def new_cache(self, options: GenerateOptions) -> Any:
        """The empty cache ``generate()`` starts with (``None`` for a model that makes its own)."""
        config = getattr(self.model, "config", None)
        if config is None:
            return None
        try:
            from transformers import DynamicCache, StaticCache
        except ImportError:  # pragma: no cover  (a model with a config but no transformers)
            return None
        if options.cache == "static":
            return StaticCache(config=config, max_cache_len=options.final_cache_len)
        return DynamicCache(config=config)

    def __call__(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """``(logits, cache)`` of one forward over ``ids`` with ``cache``."""
        kwargs: dict[str, Any] = {self.cache_arg: cache}
        if self.use_cache:
            kwargs["use_cache"] = True
        if self.logits_to_keep:
            kwargs["logits_to_keep"] = 1
        return self._unpacked(self.model(ids, **kwargs), cache)

    def generate_step(self, ids: torch.Tensor, cache: Any, positions: torch.Tensor, prefill: bool
                      ) -> tuple[torch.Tensor, Any]:
        """``(logits, cache)`` of the forward of one ``generate()`` step over the sequences ``ids`` so far.

        A transformers 5 model runs its own loop code: ``prepare_inputs_for_generation`` (the new token's ids and
        position ids cloned; for a static cache the 4-D causal mask over its whole allocation, built before the
        forward), the forward, then ``_update_model_kwargs_for_generation`` (the position ids grown by one). An
        unpadded batch carries position ids instead of an all-ones attention mask, which ``generate()`` drops.
        Any other model: its forward over the new tokens (a decode step: the last id, cloned).

        Args:
            ids: the token ids so far, ``[B, t]`` (the prompt, or the prompt and the tokens made).
            cache: the KV cache before the step.
            positions: the position ids of ``ids``, ``[B, t]``.
            prefill: whether this is the prefill (the whole prompt) or a decode step (the last token).
        """
        prepare = getattr(self.model, "prepare_inputs_for_generation", None)
        update = getattr(self.model, "_update_model_kwargs_for_generation", None)
        if prepare is None or update is None or "next_sequence_length" not in inspect.signature(prepare).parameters:
            return self(ids if prefill else ids[:, -1:].clone(), cache)
        kwargs: dict[str, Any] = {self.cache_arg: cache}
        if self.use_cache:
            kwargs["use_cache"] = True
        if "position_ids" in self.params:
            kwargs["position_ids"] = positions
        if self.logits_to_keep:
            kwargs["logits_to_keep"] = 1
        inputs = prepare(ids, next_sequence_length=None if prefill else 1, is_first_iteration=prefill, **kwargs)
        out = self.model(**inputs, return_dict=True)
        update(out, kwargs)
        return self._unpacked(out, cache)

    def _unpacked(self, out: Any, cache: Any) -> tuple[torch.Tensor, Any]:
        """``(logits, cache)`` of a forward's output (a tuple or a model output)."""
        if isinstance(out, (tuple, list)):
            return out[0], out[1] if len(out) > 1 else cache
        logits = getattr(out, "logits", None)
        new_cache = next((getattr(out, n) for n in CACHE_ARGUMENTS if getattr(out, n, None) is not None), cache)
        if not isinstance(logits, torch.Tensor):
            raise GenerateError(f"--mode generate: the forward of {type(self.model).__name__} returned "
                                f"{type(out).__name__} without logits")
        return logits, new_cache


def greedy_token(logits: torch.Tensor, ids: torch.Tensor, unfinished: torch.Tensor, eos: torch.Tensor,
                 options: GenerateOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """The greedy token choice of transformers' ``_sample`` loop for one step of a request of exactly N tokens.

    The last position's logits copied to fp32; the logits processors ``generate(min_new_tokens=N)`` builds (it
    sets ``min_length = P + N`` as well, so both ``MinLengthLogitsProcessor`` and
    ``MinNewTokensLengthLogitsProcessor`` mask the EOS token while the request is short: each an ``isin`` over
    the vocabulary and a ``where``); argmax; finished rows padded; the token appended to the ids; then the
    max-length and EOS stopping criteria. transformers' own processor and criteria classes run.

    Returns:
        The ids and unfinished flags after the step.
    """
    from transformers.generation import (
        EosTokenCriteria,
        MaxLengthCriteria,
        MinLengthLogitsProcessor,
        MinNewTokensLengthLogitsProcessor,
    )

    scores = logits[:, -1].to(copy=True, dtype=torch.float32)
    for processor in (MinLengthLogitsProcessor(options.total_len, eos),
                      MinNewTokensLengthLogitsProcessor(options.prompt_len, options.new_tokens, eos)):
        scores = processor(ids, scores)
    tokens = torch.argmax(scores, dim=-1)
    tokens = tokens * unfinished + 0 * (1 - unfinished)
    ids = torch.cat([ids, tokens[:, None]], dim=-1)
    done = MaxLengthCriteria(options.total_len)(ids, ()) | EosTokenCriteria(eos)(ids, ())
    return ids, unfinished & ~done


def generation_parts(options: GenerateOptions, cache_len: int | None, report: CacheReport
                     ) -> Callable[[torch.nn.Module, list[torch.Tensor], AnalyzeConfig], StepParts]:
    """A step factory for :func:`flopcast.features.trace_model.trace_model`: one step of a generation request.

    Args:
        options: the request.
        cache_len: tokens in the cache when the step starts (a decode step), or ``None`` for the prefill.
        report: filled with the cache the step leaves.
    """

    def make(model: torch.nn.Module, inputs: list[torch.Tensor], config: AnalyzeConfig) -> StepParts:
        model.eval()
        forward = KVForward(model, config.target)
        check_positions(model, options, config.target)
        prompt = inputs[0]
        autocast = autocast_context(config.precision, config.device, emulate_cuda=True)

        def run(events: StepEvents = NO_EVENTS, micro_batches: int | None = None) -> None:
            events.phase(None)  # set-up: the cache and ids as they are when the step starts
            batch = prompt.shape[0]
            with torch.inference_mode(), autocast():
                cache = forward.new_cache(options)
                if cache_len is None:
                    ids = prompt
                else:
                    filled = prompt.new_zeros((batch, cache_len))
                    _, cache = forward(filled, cache)
                    ids = prompt.new_zeros((batch, cache_len + 1))
                positions = prompt.new_zeros(ids.shape)
                unfinished = prompt.new_ones((batch,))
                eos = prompt.new_zeros((1,))
                events.new_inputs([ids, positions, unfinished, eos, *cache_tensors(cache)])
                events.phase(Phase.FORWARD)
                logits, cache = forward.generate_step(ids, cache, positions, prefill=cache_len is None)
                greedy_token(logits, ids, unfinished, eos, options)
            kv = cache_tensors(cache)
            report.bytes, report.layers = _storage_bytes(kv), len(kv) // 2
            report.tokens = ids.shape[1] if options.cache == "dynamic" else options.final_cache_len
            report.batch_size = batch

        return StepParts(run, model, None, StepOptions())

    return make


def adaptive_points(cost: Callable[[int], Sequence[float]], lo: int, hi: int, tolerance: float, most: int
                    ) -> dict[int, tuple[float, ...]]:
    """Points of ``cost`` on ``[lo, hi]``: the ends, then the middle of any segment whose middle is off the line.

    A segment ``[a, b]`` is split while ``cost(mid)`` differs from the straight line between ``cost(a)`` and
    ``cost(b)`` by more than ``tolerance`` of ``cost(mid)`` in any component, widest segments first, until
    ``most`` points are taken.

    Args:
        cost: a vector of costs at an integer position (e.g. FLOPs, bytes, predicted seconds of a decode step).
        lo: first position.
        hi: last position.
        tolerance: relative departure from the line that splits a segment.
        most: most points evaluated (at least 2).

    Returns:
        The evaluated points, position -> cost vector.
    """
    points = {lo: tuple(cost(lo))}
    if hi != lo:
        points[hi] = tuple(cost(hi))
    todo = [(lo, hi)] if hi - lo > 1 else []
    while todo and len(points) < most:
        todo.sort(key=lambda s: s[1] - s[0])
        a, b = todo.pop()
        mid = (a + b) // 2
        points[mid] = tuple(cost(mid))
        line = [ya + (yb - ya) * (mid - a) / (b - a) for ya, yb in zip(points[a], points[b], strict=True)]
        if any(abs(y - e) > tolerance * abs(y) for y, e in zip(points[mid], line, strict=True)):
            todo += [s for s in ((a, mid), (mid, b)) if s[1] - s[0] > 1]
    return points


def interpolated_sum(points: dict[int, Sequence[float]], lo: int, hi: int) -> tuple[float, ...]:
    """Sum over every integer position in ``[lo, hi]`` of the piecewise-linear interpolation of ``points``.

    The traced positions count with their own values; between two traced positions ``a < b`` each of the
    ``b - a - 1`` positions inside gets the straight line (their sum: ``(b - a - 1) (y_a + y_b) / 2``).
    """
    xs = sorted(points)
    if xs[0] != lo or xs[-1] != hi:
        raise ValueError(f"points must include both ends {lo} and {hi}")
    total = [0.0] * len(points[xs[0]])
    for x in xs:
        total = [t + y for t, y in zip(total, points[x], strict=True)]
    for a, b in itertools.pairwise(xs):
        inside = b - a - 1
        total = [t + inside * (ya + yb) / 2 for t, ya, yb in zip(total, points[a], points[b], strict=True)]
    return tuple(total)


def interpolated_at(points: dict[int, Sequence[float]], x: int) -> tuple[float, ...]:
    """The piecewise-linear interpolation of ``points`` at ``x`` (within the traced range)."""
    xs = sorted(points)
    b = next(p for p in xs if p >= x)
    if b == x:
        return tuple(points[b])
    a = max(p for p in xs if p < x)
    return tuple(ya + (yb - ya) * (x - a) / (b - a) for ya, yb in zip(points[a], points[b], strict=True))


@dataclass(frozen=True)
class GenerationStep:
    """One traced step of a generation request.

    Attributes:
        cache_len: tokens in the cache when the step starts (``None``: the prefill).
        analysis: the step's analysis (an inference step: its ops, memory and totals).
        cache: the KV cache the step leaves.
    """

    cache_len: int | None
    analysis: Analysis
    cache: CacheReport


@dataclass
class GenerationTrace:
    """The traced steps of one request: the prefill, and decode steps traced as :func:`adaptive_points` asks.

    Attributes:
        options: the request.
        config: the analysis config of every step (``mode`` infer, the prompt as input).
        prefill: the prefill step.
        decode: traced decode steps by cache length.
        step: traces one decode step at a cache length (for more points).
    """

    options: GenerateOptions
    config: AnalyzeConfig
    prefill: GenerationStep
    decode: dict[int, GenerationStep] = field(default_factory=dict)
    step: Callable[[int], GenerationStep] | None = None

    def at(self, cache_len: int) -> GenerationStep:
        """The decode step at ``cache_len``, traced on first use."""
        if cache_len not in self.decode:
            if self.step is None:
                raise ValueError(f"decode step at {cache_len} was not traced")
            self.decode[cache_len] = self.step(cache_len)
        return self.decode[cache_len]

    @property
    def last(self) -> GenerationStep:
        """The last decode step (the largest cache), or the prefill when N = 1."""
        if self.options.decode_steps == 0:
            return self.prefill
        return self.at(self.options.last_cache_len)

    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes per token of one sequence, B (read from the traced cache)."""
        return self.last.cache.bytes_per_token

    def kv_bytes_final(self) -> int:
        """KV-cache bytes at the end of the request (``P + N - 1`` tokens; a static cache: its allocation), B."""
        return round(self.kv_bytes_per_token() * self.options.final_cache_len * self.config.batch_size)

    def peak_memory_bytes(self) -> int:
        """The request's peak: the larger of the prefill's and the last decode step's (the largest cache), B."""
        return max(self.prefill.analysis.peak_memory_bytes, self.last.analysis.peak_memory_bytes)

    def unsupported_ops(self) -> dict[str, int]:
        """Unsupported ops of every traced step (the prefill and the decode steps traced so far), op -> count.

        Counted per traced step, not scaled to the untraced ones: a non-empty result means some of the request's
        work is missing from its counts.
        """
        total: dict[str, int] = dict(self.prefill.analysis.unsupported_ops)
        for step in self.decode.values():
            for op, n in step.analysis.unsupported_ops.items():
                total[op] = total.get(op, 0) + n
        return total

    def summary(self) -> dict[str, Any]:
        """The static side of the request (``analyze --mode generate --json``): counts per step and in total.

        Decode totals sum every decode step, the untraced ones interpolated between traced ones (exact for a
        dynamic cache's FLOPs and bytes, which are linear in the cache length).
        """
        o, p = self.options, self.prefill.analysis
        out: dict[str, Any] = {
            "schema_version": p.to_dict()["schema_version"], "target": p.target.target, "mode": "generate",
            "batch_size": p.target.batch_size, "precision": p.target.precision, "device": p.target.device,
            "prompt_len": o.prompt_len, "new_tokens": o.new_tokens, "cache": o.cache, "rules": p.rules_dict(),
            "work_unit": "MAC" if p.target.rules.count == "macs" else "FLOP", "params": p.params,
            "decode_steps": o.decode_steps, "prefill": static_counts(p),
        }
        request = list(static_vector(p))
        if o.decode_steps:
            points = adaptive_points(lambda t: static_vector(self.at(t).analysis), o.first_cache_len,
                                     o.last_cache_len, o.tolerance, o.max_traced)
            decode = interpolated_sum(points, o.first_cache_len, o.last_cache_len)
            request = [a + b for a, b in zip(request, decode, strict=True)]
            out.update(decode_traced_cache_lengths=sorted(points),
                       decode_first=static_counts(self.at(o.first_cache_len).analysis),
                       decode_last=static_counts(self.at(o.last_cache_len).analysis),
                       decode_total=dict(zip(STATIC_COUNTS, decode, strict=True)))
        out.update(request=dict(zip(STATIC_COUNTS, request, strict=True)),
                   kv_cache_bytes_per_token=self.kv_bytes_per_token(), kv_cache_bytes_final=self.kv_bytes_final(),
                   peak_memory_bytes=self.peak_memory_bytes(), unsupported_ops=self.unsupported_ops())
        return out


STATIC_COUNTS = ("flops", "macs", "work", "bytes_accessed")
"""The counts of a step in the static summary of a request."""


def static_vector(a: Analysis) -> tuple[float, ...]:
    """A step's :data:`STATIC_COUNTS` as a vector."""
    return (float(a.flops), float(a.macs), float(a.work), float(a.bytes_accessed))


def static_counts(a: Analysis) -> dict[str, float]:
    """A step's :data:`STATIC_COUNTS` with its peak memory."""
    return {**dict(zip(STATIC_COUNTS, static_vector(a), strict=True)), "peak_memory_bytes": a.peak_memory_bytes}


def step_config(config: AnalyzeConfig) -> AnalyzeConfig:
    """The analysis config of a request's steps: inference steps whose input is the prompt ``int64[B,P]``."""
    options = config.generate
    if options is None:
        raise GenerateError("--mode generate needs --prompt-len P and --new-tokens N")
    inputs = tuple(config.inputs)
    prompt = inputs[0] if inputs else ""
    if not prompt.startswith(("int64[", "int32[")):
        raise GenerateError(f"--mode generate: the first input must be the prompt's token ids (int64[B,P]), not "
                            f"{prompt or 'none'}")
    high = prompt.partition("<")[2]
    ids = f"int64[B,{options.prompt_len}]" + (f"<{high}" if high else "")
    return replace(config, mode="infer", inputs=(ids,), dims={**config.dims}, seq_len=options.prompt_len)


def trace_generation(config: AnalyzeConfig, trace: Callable[[AnalyzeConfig, Callable[..., StepParts]], Analysis],
                     model_layers: int = 0) -> GenerationTrace:
    """Trace the prefill of ``config``'s request; its decode steps are traced on demand (:meth:`GenerationTrace.at`).

    Args:
        config: the analysis config with ``generate`` set (and the prompt as the first input, ``int64[B,...]``).
        trace: traces one step of the target with a step factory (the layer-stack composition of
            :func:`flopcast.features.api.trace_target`).
        model_layers: the model's stack depth (0: unknown), for the KV cache of a stack composed from a few layers.

    Raises:
        GenerateError: no ``generate`` options, a model without a KV-cache forward, a prompt too long.
    """
    options = config.generate
    steps = step_config(config)

    def traced(cache_len: int | None) -> GenerationStep:
        report = CacheReport(model_layers=model_layers)
        analysis = trace(steps, generation_parts(options, cache_len, report))
        return GenerationStep(cache_len, analysis, report)

    return GenerationTrace(options, steps, traced(None), step=traced)

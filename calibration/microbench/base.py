"""What every microbenchmark family shares: the :class:`Family` interface, sampling and tensor helpers."""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from typing_extensions import override

from flopcast.features.records import Phase

Config = dict[str, Any]
Closure = Callable[[], Any]

TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
DTYPE_KEYS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def packet(op: str) -> str:
    """Operator name without its overload: ``aten.mm.default`` -> ``aten.mm``."""
    return ".".join(op.split(".")[:2])


def short_name(row: Mapping[str, Any]) -> str:
    """Operator of an op-table row without namespace and overload: ``aten.add.Tensor`` -> ``add``."""
    return packet(str(row["op"])).split(".")[1]


def itemsize(dtype: str) -> int:
    """Bytes per element of a dtype key (fp32, tf32, bf16, fp16)."""
    return TORCH_DTYPES[dtype].itemsize


def log_int(rng: random.Random, lo: int, hi: int) -> int:
    """An integer drawn log-uniformly from ``[lo, hi]``."""
    return max(lo, min(hi, round(math.exp(rng.uniform(math.log(lo), math.log(hi))))))


def rand(shape: Sequence[int], dtype: str, device: str, *, requires_grad: bool = False) -> torch.Tensor:
    """A random normal tensor of a dtype key on ``device``."""
    return torch.randn(tuple(shape), dtype=TORCH_DTYPES[dtype], device=device, requires_grad=requires_grad)


def numel(*shape: int) -> int:
    """Number of elements of a shape."""
    return math.prod(shape)


def grad_closure(output: torch.Tensor, inputs: Sequence[torch.Tensor]) -> Closure:
    """Closure running only the backward of an already computed ``output`` (the graph is kept)."""
    grad = torch.randn_like(output)
    return lambda: torch.autograd.grad(output, list(inputs), grad, retain_graph=True)


def row_shapes(row: Mapping[str, Any]) -> list[list[int]]:
    """Input shapes of an op-table row (the JSON column decoded)."""
    return json.loads(row["input_shapes"])


def row_dtype(row: Mapping[str, Any]) -> str | None:
    """Dtype key of an op-table row, or ``None`` where no family dtype matches (float64, ints)."""
    return DTYPE_KEYS.get(str(row["dtype"]))


@contextlib.contextmanager
def math_mode(dtype: str) -> Iterator[None]:
    """Allow TF32 tensor cores for matmul and cuDNN exactly when ``dtype`` is ``tf32``.

    PyTorch lets cuDNN use TF32 by default; fp32 configs switch it off so fp32 means fp32.
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = dtype == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


class Family:
    """One kind of microbenchmark; subclasses set the class attributes and the four methods.

    Attributes:
        name: family id, the ``family`` column of the rows.
        ops: op-table operators (``aten.mm``) whose rows :meth:`config_from_op` can turn into configs.
        main_ops: operator name prefixes that name a row when the closure runs several ops; without a
            match the op with the most FLOPs (then bytes) names it.
        shrink_keys: config dims halved (largest first) until a config fits in the memory cap.
        cpu_dtypes: dtype keys sensible on a CPU.
        gpu_dtypes: dtype keys sensible on a GPU.
        widened_for: sampled values added to cover the layers of particular zoo models, ``{config key: {value:
            (zoo model, ...)}}``: a sampled config with such a value derives from those models' shapes (the
            ``source_model`` column), so a family-out evaluation must not train on it when their family is held out.
    """

    name: ClassVar[str]
    ops: ClassVar[tuple[str, ...]] = ()
    main_ops: ClassVar[tuple[str, ...]] = ()
    shrink_keys: ClassVar[tuple[str, ...]] = ()
    cpu_dtypes: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    gpu_dtypes: ClassVar[tuple[str, ...]] = ("fp32", "bf16", "fp16")
    widened_for: ClassVar[Mapping[str, Mapping[Any, tuple[str, ...]]]] = {}

    def derived_from(self, config: Mapping[str, Any]) -> tuple[str, ...]:
        """Zoo models whose layers a config's values were added to the sampler for (:attr:`widened_for`), sorted."""
        return tuple(sorted({m for key, values in self.widened_for.items() for m in values.get(config.get(key), ())}))

    def dtypes_for(self, device_kind: str) -> tuple[str, ...]:
        """Dtype keys this family measures on a ``cpu`` or ``gpu``."""
        return self.gpu_dtypes if device_kind == "gpu" else self.cpu_dtypes

    def phase(self, config: Config) -> Phase:
        """Phase the closure's ops belong to: backward when it computes gradients, else forward."""
        return Phase.BACKWARD if config.get("pass") in ("bwd", "fwd_bwd") else Phase.FORWARD

    def sample(self, rng: random.Random) -> Config:
        """One config without dtype, dims drawn log-uniformly over the family's full range."""
        raise NotImplementedError

    def working_set_bytes(self, config: Config) -> int:
        """Bytes of the tensors the closure keeps alive (inputs, outputs, saved state)."""
        raise NotImplementedError

    def build(self, config: Config, device: str) -> Closure:
        """Create the tensors on ``device`` and return the closure to time (one op call)."""
        raise NotImplementedError

    def config_from_op(self, row: Mapping[str, Any]) -> Config | None:
        """Config reproducing one op-table row, or ``None`` where the row does not fit this family."""
        return None

    def sample_configs(
        self, rng: random.Random, device_memory_bytes: int, n: int, dtypes: Sequence[str]
    ) -> list[Config]:
        """``n`` configs cycling through ``dtypes``, each shrunk to fit in ``device_memory_bytes``.

        Args:
            rng: seeded random source (the only randomness used).
            device_memory_bytes: cap of one config's working set, bytes.
            n: number of configs.
            dtypes: dtype keys to cycle through (callers pass a subset of :meth:`dtypes_for`).
        """
        return [self.fit({**self.sample(rng), "dtype": dtypes[i % len(dtypes)]}, device_memory_bytes) for i in range(n)]

    def fit(self, config: Config, cap_bytes: int) -> Config:
        """Halve the largest of :attr:`shrink_keys` until the working set is at most ``cap_bytes``."""
        config = dict(config)
        while self.working_set_bytes(config) > cap_bytes:
            key = max(self.shrink_keys, key=lambda k: config[k])
            if config[key] <= 1:
                break
            config[key] = max(1, config[key] // 2)
        return config


def sample_matrix(rng: random.Random, max_side: int = 65536) -> Config:
    """``rows`` and ``cols`` drawn log-uniformly from 1 to ``max_side`` (shrunk later to fit memory)."""
    return {"rows": log_int(rng, 1, max_side), "cols": log_int(rng, 1, max_side)}


def as_matrix(shape: Sequence[int]) -> Config:
    """``rows`` x ``cols`` view of a shape: the last dim against all leading dims."""
    if not shape:
        return {"rows": 1, "cols": 1}
    return {"rows": max(1, math.prod(shape[:-1])), "cols": max(1, shape[-1])}


class MatrixFamily(Family):
    """A family over a ``rows x cols`` tensor; :attr:`tensors` is how many such tensors stay alive."""

    tensors: ClassVar[float] = 2.0
    shrink_keys = ("rows", "cols")

    @override
    def working_set_bytes(self, config: Config) -> int:
        return int(self.tensors * itemsize(config["dtype"]) * config["rows"] * config["cols"])

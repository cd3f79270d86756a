"""Input specs: ``DTYPE[DIM,...]`` with an optional ``<HIGH`` bound, e.g. ``int64[B,128]<30522``.

A dim is an integer or a symbol; ``B`` is bound by the batch size and other symbols by ``--dim S=1024``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
    "int32": torch.int32,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
INTEGER_DTYPES = ("int64", "int32", "int8", "uint8")
_SPEC = re.compile(r"^\s*(?P<dtype>[A-Za-z0-9_]+)\s*\[(?P<dims>[^\]]*)\]\s*(?:<\s*(?P<high>\S+))?\s*$")
_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SpecError(ValueError):
    """An input spec, a dim binding or a symbol is invalid."""


@dataclass(frozen=True)
class InputSpec:
    """One forward argument described by dtype and dims (ints or symbols).

    Attributes:
        dtype: dtype name, a key of :data:`DTYPES`.
        dims: each an ``int`` or a symbol name.
        high: exclusive upper bound of integer values (values in ``[0, high)``), or ``None``.
        text: the spec as written.
    """

    dtype: str
    dims: tuple[int | str, ...]
    high: int | None = None
    text: str = ""

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols used by the dims, in order."""
        return tuple(d for d in self.dims if isinstance(d, str))

    def shape(self, bindings: Mapping[str, int]) -> tuple[int, ...]:
        """Concrete shape with every symbol bound.

        Raises:
            SpecError: if a symbol has no binding.
        """
        out = []
        for d in self.dims:
            if isinstance(d, int):
                out.append(d)
            elif d in bindings:
                out.append(int(bindings[d]))
            else:
                hint = "--batch-size" if d == "B" else f"--dim {d}=<int>"
                raise SpecError(f"symbol {d!r} in {self.text or self.dtype} is unbound: pass {hint}")
        return tuple(out)

    def torch_dtype(self) -> torch.dtype:
        """The torch dtype."""
        return DTYPES[self.dtype]

    def materialize(self, bindings: Mapping[str, int], device: str | torch.device = "cpu") -> torch.Tensor:
        """A real random tensor of this spec (integer values in ``[0, high)``, floats ~ N(0, 1)).

        Under a FakeTensorMode this gives a fake tensor, so the same call serves tracing and measuring.
        """
        shape = self.shape(bindings)
        dt = self.torch_dtype()
        if self.dtype == "bool":
            return torch.ones(shape, dtype=dt, device=device)
        if self.dtype in INTEGER_DTYPES:
            return torch.randint(0, self.high or 2, shape, dtype=dt, device=device)
        return torch.randn(shape, dtype=dt, device=device)


def parse_spec(text: str) -> InputSpec:
    """Parse ``DTYPE[DIM,...]`` with an optional ``<HIGH``.

    Raises:
        SpecError: naming the offending token.
    """
    m = _SPEC.match(text)
    if not m:
        raise SpecError(f"bad input spec {text!r}: expected DTYPE[DIM,...] such as float32[B,3,224,224]")
    dtype = m["dtype"]
    if dtype not in DTYPES:
        raise SpecError(f"unknown dtype {dtype!r} in {text!r}: use one of {', '.join(DTYPES)}")
    dims: list[int | str] = []
    raw = m["dims"].strip()
    for token in [t.strip() for t in raw.split(",")] if raw else []:
        if re.fullmatch(r"\d+", token):
            dims.append(int(token))
        elif _SYMBOL.match(token):
            dims.append(token)
        else:
            raise SpecError(f"bad dim {token!r} in {text!r}: a dim is a non-negative integer or a symbol")
    high = None
    if m["high"] is not None:
        if not re.fullmatch(r"\d+", m["high"]) or int(m["high"]) < 1:
            raise SpecError(f"bad bound {m['high']!r} in {text!r}: expected <N with N a positive integer")
        if dtype not in INTEGER_DTYPES:
            raise SpecError(f"bound <{m['high']} in {text!r} only applies to integer dtypes")
        high = int(m["high"])
    return InputSpec(dtype, tuple(dims), high, text.strip())


def parse_dims(pairs: list[str] | None) -> dict[str, int]:
    """Parse ``--dim S=1024`` bindings.

    Raises:
        SpecError: on a malformed binding.
    """
    out: dict[str, int] = {}
    for p in pairs or []:
        name, sep, value = p.partition("=")
        if not sep or not _SYMBOL.match(name.strip()) or not re.fullmatch(r"\s*\d+\s*", value):
            raise SpecError(f"bad --dim {p!r}: expected SYMBOL=INT such as S=1024")
        out[name.strip()] = int(value)
    return out

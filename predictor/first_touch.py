"""First touch of fresh memory on a CPU: the page faults of large tensors a step allocates anew.

PyTorch's CPU allocator has no cache: every op output is a fresh ``posix_memalign``. glibc serves a block at or
above its mmap threshold with a fresh ``mmap``, and the dynamic threshold stops rising at 32 MiB
(``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit Linux), so each output of >= 32 MiB is mapped, page-faulted and zeroed
by the kernel on first write, then unmapped when freed: every step again. On the 2-vCPU Xeon VM of 2026-12-05,
``torch.sqrt`` of a 67 MiB tensor took 19.5 ms into a fresh output and 4.0 ms into a reused one (~4.3 GB/s of
first touch), while below 32 MiB the two were equal (``calibration.ceilings.first_touch_bytes_per_s`` measures
it). A GPU's caching allocator reuses its blocks: no GPU op pays this.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flopcast.predictor.shape_cells import parse_shapes

MMAP_THRESHOLD_BYTES = 32 * 2**20
"""Outputs of at least this size are freshly mapped on every allocation (glibc's largest mmap threshold)."""


def fresh_bytes(ops: pd.DataFrame) -> np.ndarray:
    """Bytes of each op's outputs that are mapped anew when it runs on a CPU.

    An op allocates its outputs unless it writes in place (an ``_``-suffixed aten name) or writes nothing (a
    view). Each output counts alone (a ``convolution_backward`` allocates its input and weight gradients
    apart) when it reaches :data:`MMAP_THRESHOLD_BYTES`; its size is its element count times the op's written
    bytes per output element.

    Args:
        ops: op table with ``op``, ``output_shapes`` (JSON lists of shapes) and ``bytes_written``.

    Returns:
        Bytes per op (0 where nothing is mapped anew).
    """
    out = np.zeros(len(ops))
    written = ops["bytes_written"].astype("float64").fillna(0.0).to_numpy()
    for i, (name, shapes) in enumerate(zip(ops["op"].astype(str), ops["output_shapes"].astype(str), strict=True)):
        if written[i] < MMAP_THRESHOLD_BYTES or name.endswith("_"):
            continue
        cell = parse_shapes(shapes)
        sizes = [float(np.prod(s)) for s in cell if isinstance(s, list)] if isinstance(cell, list) else []
        itemsize = written[i] / max(sum(sizes), 1.0)
        out[i] = sum(n * itemsize for n in sizes if n * itemsize >= MMAP_THRESHOLD_BYTES)
    return out


def first_touch_s(ops: pd.DataFrame, bytes_per_s: float | None) -> np.ndarray:
    """Time each op spends faulting in its fresh outputs on a CPU that touches new memory at ``bytes_per_s``, s.

    Zero everywhere where the rate was not measured (``None``): the cost is a property of the machine (its
    kernel, transparent huge pages, the hypervisor), which a spec sheet does not give.
    """
    if not bytes_per_s or bytes_per_s <= 0:
        return np.zeros(len(ops))
    return fresh_bytes(ops) / bytes_per_s

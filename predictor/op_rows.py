"""Which microbenchmark rows train the op models: trusted rows that time the op they are named after.

A microbenchmark closure may run several ops (an ``nn.LSTMCell`` step: two GEMMs and the gate kernels; an
RMS norm decomposed into pow, mean, add, rsqrt and two muls). Its row takes the name and shapes of the
family's main op (``main_ops``: a fused cell, a native norm kernel) and the FLOPs and bytes summed over
the closure. Where none of the closure's ops is a main op (on a CPU, and in the CPU trace of any
campaign, the cell is not fused; an RMS norm without a fused kernel), the row is named after its costliest
op instead, but still times the whole closure: it would teach that op's model (``aten.addmm``,
``aten.pow``) a whole cell's or norm's time, while a traced model predicts each of those ops on its own.
Such rows are left out of op training and op evaluation.
"""

from __future__ import annotations

import pandas as pd

from flopcast.calibration.microbench import family_names, get_family
from flopcast.datasets.loader import trusted_rows

ROW_PRECISION = "fp32-strict"
"""The precision a microbenchmark row is featurized at: its closure runs TF32 exactly when the row's dtype is
``tf32`` (``calibration.microbench.base.math_mode``), so a ``float32`` row is strict fp32, convolutions too."""


def named_after_main_op(mb: pd.DataFrame) -> pd.Series:
    """Per row: whether its op is one its family names rows after (always true without ``main_ops``)."""
    known = set(family_names())
    prefixes = {f: get_family(f).main_ops for f in mb["family"].astype(str).unique() if f in known}
    return pd.Series([not prefixes.get(f) or op.startswith(prefixes[f])
                      for f, op in zip(mb["family"].astype(str), mb["op"].astype(str), strict=True)], index=mb.index)


def op_training_rows(mb: pd.DataFrame) -> pd.DataFrame:
    """Trusted rows (:func:`flopcast.datasets.loader.trusted_rows`) named after the op they time."""
    rows = trusted_rows(mb)
    return rows[named_after_main_op(rows).to_numpy(bool)].reset_index(drop=True)

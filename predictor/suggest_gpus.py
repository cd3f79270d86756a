"""``flopcast suggest --max-gpus N``: how many GPUs of a node, data-parallel, each at the recommended batch.

For a GPU type, each count ``n`` (powers of two up to ``--max-gpus`` and the node's ``per_node``) is priced by
:func:`~flopcast.predictor.parallel.predict.predict_parallel` (DDP, the global batch ``n`` times the recommended
per-GPU batch, so every GPU runs the step that fits it). The count chosen: with a deadline, the smallest that meets
it at p90 (the fewest GPUs held; if none does, the fastest); without one, the count that minimises the objective
(for time, the fastest). A count whose per-GPU peak (DDP keeps a copy of the gradients in its buckets) does not fit
is left out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

RUN_KEYS = ("steps", "step_time_s", "step_time_s_p10", "step_time_s_p90", "step_energy_j", "step_energy_j_p10",
            "step_energy_j_p90", "run_time_s", "run_time_s_p10", "run_time_s_p90", "run_energy_kwh",
            "run_energy_kwh_p10", "run_energy_kwh_p90", "run_co2_kg", "run_co2_kg_p10", "run_co2_kg_p90",
            "peak_memory_bytes", "fits", "speedup", "scaling_efficiency", "comm_exposed_s")
"""Keys of a parallel prediction that replace the one-GPU record's."""


def gpu_counts(max_gpus: int, per_node: int) -> list[int]:
    """Counts to try: 1, 2, 4, ... up to the smaller of ``max_gpus`` and ``per_node``, and that bound itself."""
    bound = max(min(max_gpus, per_node), 1)
    counts = [1]
    while counts[-1] * 2 <= bound:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == bound else [*counts, bound]


def priced(record: dict[str, Any], gpus: int, price_per_gpu_hour: float | None) -> dict[str, Any]:
    """The record with its run cost for ``gpus`` GPUs (``None`` without a price)."""
    for q in ("", "_p10", "_p90"):
        record["run_cost" + q] = record["run_time_s" + q] / 3600.0 * price_per_gpu_hour * gpus \
            if price_per_gpu_hour else None
    return record


def data_parallel_records(predict: Any, model: Any, hardware: str, batch: int, counts: list[int],
                          price_per_gpu_hour: float | None, analyse: Any = None) -> dict[int, dict[str, Any]]:
    """The run on each count > 1 of GPUs, DDP at ``batch`` samples per GPU: ``predict --gpus``' keys.

    Args:
        predict: the one-GPU PredictConfig (``dataset_size`` set).
        model: the cost model.
        hardware: the GPU type.
        batch: samples per GPU per step.
        counts: GPU counts.
        price_per_gpu_hour: the pool's price (``None``: no cost).
        analyse: ``predict_parallel``'s analysis function (default: the CLI's).
    """
    from flopcast.predictor.parallel.predict import ParallelConfig, analyse_target, predict_parallel

    out = {}
    for n in counts:
        if n == 1:
            continue
        one = replace(predict, hardware=(hardware,), analysis=replace(predict.analysis, batch_size=batch * n))
        p = predict_parallel(ParallelConfig(predict=one, gpus=n, parallel="dp"), model, analyse or analyse_target)[0]
        d = p.to_dict()
        out[n] = priced({k: d[k] for k in RUN_KEYS if k in d} | {"gpus": n, "batch_size": batch * n}, n,
                        price_per_gpu_hour)
    return out


def choose(options: dict[int, dict[str, Any]], key: str, deadline_s: float | None) -> int:
    """The GPU count to run: the smallest meeting the deadline at p90, else the one with the lowest ``key``.

    Args:
        options: records by GPU count (the one-GPU record included).
        key: the objective's record key (lower is better).
        deadline_s: the deadline, s (``None``: none).
    """
    fits = {n: o for n, o in options.items() if o.get("fits") is not False and o.get(key) is not None}
    if not fits:
        return min(options)
    if deadline_s is not None:
        meeting = [n for n, o in fits.items() if o["run_time_s_p90"] <= deadline_s]
        return min(meeting) if meeting else min(fits, key=lambda n: (fits[n]["run_time_s_p90"], n))
    return min(fits, key=lambda n: (fits[n][key], n))

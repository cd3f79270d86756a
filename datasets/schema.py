"""Column schemas of flopcast's tables: the one contract between features, calibration and predictor.

``analyze --ops-parquet`` writes :data:`OP_COLUMNS`; calibration writes the same columns for the ops it
benchmarks plus :data:`MEASURED_COLUMNS` and :data:`PROVENANCE_COLUMNS`; model-step measurements use
:data:`STEP_COLUMNS`. A change to a column changes this module and its test, nowhere else.
"""

from __future__ import annotations

SCHEMA_VERSION = "1"

# Static features of one operator call (strings hold JSON for nested values).
OP_COLUMNS: dict[str, str] = {
    "op": "string",  # aten.mm
    "category": "string",  # matmul, conv, ...
    "phase": "string",  # forward, backward, optimizer
    "module": "string",  # transformer.h.3.attn
    "dtype": "string",  # compute dtype: float32, bfloat16, ...
    "input_shapes": "string",  # JSON list of shapes
    "input_dtypes": "string",  # JSON list of dtype names
    "output_shapes": "string",  # JSON list of shapes
    "flops": "int64",
    "macs": "int64",
    "bytes_read": "int64",
    "bytes_written": "int64",
    "outcome": "string",  # formula, zero, unsupported
    "framework": "string",  # torch, numpy, tf, onnx
    "attrs": "string",  # JSON dict of op attributes (stride, groups, ...)
}

# What a measurement window adds (see flopcast.calibration.measurement.Measurement).
MEASURED_COLUMNS: dict[str, str] = {
    "time_s": "float64",
    "time_s_min": "float64",
    "time_s_max": "float64",
    "n_repeats": "int64",
    "n_windows": "int64",
    "window_s": "float64",
    "energy_j": "float64",  # null when no energy source
    "energy_source": "string",  # nvml, rapl, codecarbon-tdp, none
    "energy_window_s": "float64",
    "avg_power_w": "float64",
    "trusted": "bool",
    "reason": "string",
}

# Where and with what each measured row was taken: rows never mix hardware.
PROVENANCE_COLUMNS: dict[str, str] = {
    "key": "string",  # unique measurement key (op/model, shapes, dtype, hardware, versions)
    "hardware": "string",  # descriptor name
    "device_kind": "string",  # gpu, cpu
    "torch_version": "string",
    "cuda_version": "string",
    "driver_version": "string",
    "flopcast_version": "string",
    "measured_at": "string",  # ISO 8601 UTC
    "campaign": "string",  # campaign id (MLflow run id when tracked)
}

# One microbenchmark row: static op features + family/config + measurement + provenance.
MICROBENCH_COLUMNS: dict[str, str] = {
    "family": "string",  # microbenchmark family (matmul, conv2d_fwd, ...)
    "config": "string",  # JSON of the family's config
    "source_model": "string",  # models the shapes came from, comma-separated ("" for sampled shapes); see below
    **OP_COLUMNS,
    **MEASURED_COLUMNS,
    **PROVENANCE_COLUMNS,
}

# One measured model step with the analysis of the same config.
STEP_COLUMNS: dict[str, str] = {
    "model": "string",  # zoo name
    "family": "string",  # zoo family
    "batch_size": "int64",
    "mode": "string",  # train, infer
    "precision": "string",  # fp32, tf32, bf16, fp16
    "optimizer": "string",
    "loss": "string",  # mean, cross-entropy, mse (the train step's loss; STEP_OPTION_DEFAULTS for older rows)
    "grad_clip": "float64",  # max gradient norm clipped to; null: no clipping
    "grad_accumulation": "int64",  # micro-batches per optimizer step (the row times all of them)
    "fused_optimizer": "bool",  # the optimizer's fused=True kernels
    "grad_scaler": "bool",  # a GradScaler scaled the loss (fp16)
    "measured_peak_memory_bytes": "int64",  # max_memory_allocated (GPU) or profiler/allocator peak (CPU)
    "est_peak_memory_bytes": "int64",  # flopcast's static estimate
    "flops": "int64",
    "bytes_accessed": "int64",
    "op_count": "int64",
    "params": "int64",
    **MEASURED_COLUMNS,
    **PROVENANCE_COLUMNS,
}

# One collective microbenchmark row (``calibrate --collectives``): a collective of one size over the node's GPUs.
COLLECTIVE_COLUMNS: dict[str, str] = {
    "collective": "string",  # all_reduce, all_gather, reduce_scatter, send_recv
    "bytes": "int64",  # nccl-tests' size: the whole buffer (all-gather output, reduce-scatter input), bytes
    "ranks": "int64",  # ranks of the communicator
    "nodes": "int64",  # nodes they span
    "backend": "string",  # nccl, gloo
    "time_s": "float64",  # median over windows of the slowest rank's time per call
    "time_s_min": "float64",
    "time_s_max": "float64",
    "n_repeats": "int64",  # calls per window
    "n_windows": "int64",
    "algbw_bytes_per_s": "float64",  # bytes / time_s
    "busbw_bytes_per_s": "float64",  # algbw x the bus factor (2(n-1)/n all-reduce, (n-1)/n gathers, 1 send/recv)
    **PROVENANCE_COLUMNS,
}

# What a microbenchmark row without a provenance column (measured before it existed) meant. ``source_model`` names
# the models whose shapes a config was derived from: the analysed target of a ``calibrate --ops-from`` table
# (a zoo model by its name) and the zoo models a sampler range was widened for (``Family.widened_for``); an
# evaluation holding out a model's family must not train on these rows. Older rows read as "" (sampled).
MICROBENCH_DEFAULTS: dict[str, object] = {
    "source_model": "",
}

# What a step row without the step-option columns (measured before they existed) meant: the plain step.
STEP_OPTION_DEFAULTS: dict[str, object] = {
    "loss": "mean",
    "grad_clip": None,
    "grad_accumulation": 1,
    "fused_optimizer": False,
    "grad_scaler": False,
}

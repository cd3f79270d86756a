"""The one configuration record of ``flopcast calibrate``, with the ``--quick`` preset."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from flopcast.features.step_options import StepOptions

DEVICES = ("cpu", "cuda")
DTYPES = ("fp32", "tf32", "bf16", "fp16")
DEFAULT_OUT = Path("flopcast-calibration")
DEFAULT_COUNTRY = "FRA"
QUICK_ZOO = ("mlp-small", "lenet5", "m5-audio", "llama-decode-c512")
"""Small zoo models of four families measured by ``--quick`` (with a grouped-query decode step: memory-bound work)."""


class CalibrateConfigError(ValueError):
    """An option of ``flopcast calibrate`` is invalid."""


@dataclass(frozen=True)
class CalibrateConfig:
    """Everything one calibration campaign needs.

    Attributes:
        device: ``cpu`` or ``cuda``.
        out_dir: where tables, the descriptor and exports go.
        quick: preset that calibrates a new CPU in a few minutes (few small configs, 2-3 zoo models).
        budget_minutes: wall-clock cap of the campaign, min (``None``: no cap).
        families: microbenchmark families to run (``None``: all registered; empty: none, model steps only).
        dtypes: dtypes to sample (``None``: each family's defaults for the device).
        zoo: zoo models to measure (``None``: the preset's choice; empty: none).
        configs_per_family: sampled shapes per family (dtypes cycle through them); 0 with ``ops_from``: only
            the shapes of those tables.
        hardware: catalog name or descriptor file whose spec values and name label the probed device.
        country: ISO 3166 alpha-3 country of the grid, for CodeCarbon.
        tracking_uri: MLflow tracking URI (``None``: MLflow's own default, a local store in the cwd).
        experiment: MLflow experiment name (``None``: ``flopcast-<hardware>``).
        ops_from: op tables (parquet) of analysed models whose shapes are benchmarked too.
        seed: seed of shape sampling and ordering.
        energy: whether to read energy at all.
        energy_share: share of microbenchmark configs that also get an energy window (0..1).
        min_window_s: minimum timing window, s.
        n_windows: timed windows per measurement.
        energy_window_s: minimum energy window, s.
        max_working_set_bytes: cap of one microbenchmark's tensors, bytes (``None``: from device memory).
        max_flops: cap of one microbenchmark repetition's FLOPs (``None``: a per-device-kind default).
        step_batch_sizes: batch sizes of zoo steps (``None``: each model's own list).
        step_precisions: precisions of zoo steps (``None``: device defaults).
        step_modes: modes of zoo steps.
        step: how the zoo train steps are written (default: the plain step of the released data).
        shard_index: this process's shard of the config list (SLURM array task id).
        shard_count: number of shards.
        slurm: submit a SLURM job array instead of running here.
        partition: SLURM partition.
        gres: SLURM generic resources (``gpu:h100:1``).
        array: number of array tasks (shards).
        time_min: SLURM time limit per task, min.
        dry_run: print the sbatch script instead of submitting.
        track: log the campaign to MLflow.
        progress: show a progress bar.
        store: file the finished campaign as this machine's calibration in the per-user store, where a plain
            ``predict --hardware local`` finds it.
        collectives: measure collective bus bandwidths over this node's GPUs (or ``nodes`` nodes under SLURM)
            instead of ops and steps (:mod:`flopcast.calibration.collective_launch`).
        nodes: SLURM nodes of a ``collectives`` job (its GPUs per node: ``gres``' count).
    """

    device: str = "cpu"
    out_dir: Path = DEFAULT_OUT
    quick: bool = False
    budget_minutes: float | None = None
    families: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    zoo: tuple[str, ...] | None = None
    configs_per_family: int = 24
    hardware: str | None = None
    country: str = DEFAULT_COUNTRY
    tracking_uri: str | None = None
    experiment: str | None = None
    ops_from: tuple[Path, ...] = ()
    seed: int = 0
    energy: bool = True
    energy_share: float = 0.1
    min_window_s: float = 0.05
    n_windows: int = 3
    energy_window_s: float = 1.0
    max_working_set_bytes: int | None = None
    max_flops: float | None = None
    step_batch_sizes: tuple[int, ...] | None = None
    step_precisions: tuple[str, ...] | None = None
    step_modes: tuple[str, ...] = ("train", "infer")
    step: StepOptions = field(default_factory=StepOptions)
    shard_index: int = 0
    shard_count: int = 1
    slurm: bool = False
    partition: str | None = None
    gres: str | None = None
    array: int = 1
    time_min: int = 60
    dry_run: bool = False
    track: bool = True
    progress: bool = True
    store: bool = True
    collectives: bool = False
    nodes: int = 1

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise CalibrateConfigError(f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        bad = [d for d in self.dtypes or () if d not in DTYPES]
        if bad:
            raise CalibrateConfigError(f"unknown dtype(s) {', '.join(bad)}: use {', '.join(DTYPES)}")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise CalibrateConfigError(f"--budget-minutes must be > 0, not {self.budget_minutes}")
        if not 0.0 <= self.energy_share <= 1.0:
            raise CalibrateConfigError(f"energy share must lie in [0, 1], not {self.energy_share}")
        if self.configs_per_family < 0 or self.n_windows < 1 or self.min_window_s <= 0:
            raise CalibrateConfigError("configs per family must be >= 0, windows >= 1, window length > 0")
        if self.configs_per_family == 0 and not self.ops_from:
            raise CalibrateConfigError("--configs-per-family 0 measures only --ops-from shapes: give --ops-from")
        if self.nodes < 1:
            raise CalibrateConfigError(f"--nodes must be >= 1, not {self.nodes}")
        if self.nodes > 1 and not (self.collectives and self.slurm):
            raise CalibrateConfigError(f"--nodes {self.nodes}: several nodes are measured by --collectives --slurm")
        if not 0 <= self.shard_index < self.shard_count:
            raise CalibrateConfigError(f"shard {self.shard_index} is outside 0..{self.shard_count - 1}")

    def with_preset(self) -> CalibrateConfig:
        """The config with the ``--quick`` preset applied where the user left defaults.

        ``--quick``: 12 small shapes per family, fp32 only, working sets <= 16 MiB and 5 GFLOP, 30 ms windows,
        energy on 3 % of the configs and on the zoo steps, :data:`QUICK_ZOO` at batch sizes 1 and 8.
        """
        if not self.quick:
            return self
        return replace(
            self,
            configs_per_family=min(self.configs_per_family, 12),
            dtypes=self.dtypes or ("fp32",),
            max_working_set_bytes=self.max_working_set_bytes or 16 * 2**20,
            max_flops=self.max_flops or 5e9,
            min_window_s=min(self.min_window_s, 0.03),
            energy_share=min(self.energy_share, 0.03),
            zoo=self.zoo if self.zoo is not None else QUICK_ZOO,
            step_batch_sizes=self.step_batch_sizes or (1, 8),
            step_precisions=self.step_precisions or ("fp32",),
            budget_minutes=self.budget_minutes or 3.0,
        )

    def shard(self, index: int, count: int) -> CalibrateConfig:
        """The same campaign restricted to shard ``index`` of ``count`` (no SLURM submission)."""
        return replace(self, shard_index=index, shard_count=count, slurm=False, dry_run=False)


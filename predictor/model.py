"""The fitted cost model: op time and power models, step stages, memory fit, and what it was trained on."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.calibration.identity import same_device
from flopcast.predictor.device_offsets import predicted_offsets
from flopcast.predictor.featurize import HardwareView
from flopcast.predictor.memory import MemoryModel
from flopcast.predictor.op_model import OpPowerModel, OpTimeModel
from flopcast.predictor.step_model import StepEnergyModel, StepTimeModel

FORMAT_VERSION = 1
"""Version of the saved model layout; a saved model of another version is refused."""


@dataclass
class CostModel:
    """Everything ``predict`` needs, as fitted by :func:`flopcast.predictor.training.fit_cost_model`.

    Attributes:
        op_time: op time quantile model.
        op_power: op power-share model (``None`` when no training row had measured power).
        step_time: step time stages.
        step_energy: step energy stages.
        memory: peak-memory fit.
        hardware: per trained device: ``descriptor`` (dict), ``overhead_s`` (fitted launch overhead, s),
            ``backward_overhead_s`` (fitted cost of one microbenchmarked backward call, s; devices with backward
            rows), ``op_rows``, ``step_rows``, ``energy_source``.
        imputed_eff: per device kind, ``peak`` and ``bw`` efficiencies (measured / spec) used for CPUs
            without measured ceilings and the kind's fitted launch overhead; for GPUs, the spec-sheet model of
            the op model's device offsets (:mod:`flopcast.predictor.device_offsets`).
        info: dataset version and checksums, training metrics, flopcast version, creation time.
    """

    op_time: OpTimeModel
    op_power: OpPowerModel | None
    step_time: StepTimeModel
    step_energy: StepEnergyModel
    memory: MemoryModel
    hardware: dict[str, dict[str, Any]] = field(default_factory=dict)
    imputed_eff: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def trained_name(self, d: HardwareDescriptor) -> str | None:
        """Name of the trained device ``d`` is, else ``None``.

        Same name, or same vendor name and kind. A CPU must also be the same processor: CPU descriptors
        are named by vendor and brand (``local-cpu-amd-epyc``), which cloud VMs share across generations,
        so the core count, the CPU family (``extra.cpu_family``, from ``/proc/cpuinfo``) and the vector
        width (``extra.flops_per_cycle_per_core``) must match where both descriptors know them: a 2-core
        Zen 5 VM's measurements do not calibrate a 64-core server or a Zen 3 VM of the same brand. The rule is
        :func:`flopcast.calibration.identity.same_device`, which the per-user calibration store applies too.
        """
        for name, entry in self.hardware.items():
            if same_device(d, name, entry["descriptor"]):
                return name
        return None

    def view(self, d: HardwareDescriptor) -> HardwareView:
        """Feature view of ``d``: fitted overhead for trained devices, imputed efficiencies for the rest."""
        entry = self.hardware.get(self.trained_name(d) or "", {})
        return HardwareView.of(d, entry.get("overhead_s"), self.imputed_eff.get(d.kind, {}),
                               entry.get("backward_overhead_s"))

    def offsets(self, d: HardwareDescriptor) -> list[float] | None:
        """The op model's offsets of ``d``.

        Its own (a trained GPU), predicted from its spec sheet (a GPU without rows), or ``None`` (a CPU).
        """
        name = self.trained_name(d)
        own = getattr(self.op_time, "offsets_", {}).get(name) if name else None
        return own if own is not None else predicted_offsets(d, self.imputed_eff.get(d.kind, {}))

    @property
    def version(self) -> str:
        """Model version label: ``<format>-<dataset version>``."""
        return f"{FORMAT_VERSION}-{self.info.get('dataset_version', 'unknown')}"

    def summary(self) -> dict[str, Any]:
        """Short description: version, trained devices with their row counts, metrics."""
        return {
            "model_version": self.version,
            "hardware": {k: {n: v for n, v in e.items() if n != "descriptor"} for k, e in self.hardware.items()},
            "metrics": self.info.get("metrics", {}),
        }


def finite_or(value: float | None, default: float) -> float:
    """``value`` when it is a finite number, else ``default``."""
    return float(value) if value is not None and math.isfinite(value) else default


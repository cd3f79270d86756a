"""Where and with what a row was measured: hardware id and software versions (rows never mix hardware)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import torch

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.features.version import flopcast_version


@dataclass(frozen=True)
class Provenance:
    """The provenance columns shared by every row of one campaign (see ``PROVENANCE_COLUMNS``).

    Attributes:
        hardware: descriptor name.
        device_kind: ``gpu`` or ``cpu``.
        torch_version: ``torch.__version__``.
        cuda_version: CUDA runtime torch was built with (empty on CPU builds).
        driver_version: NVIDIA driver (empty without one).
        flopcast_version: installed flopcast version.
        campaign: campaign id (the MLflow run id when tracked).
    """

    hardware: str
    device_kind: str
    torch_version: str
    cuda_version: str
    driver_version: str
    flopcast_version: str
    campaign: str = ""

    @classmethod
    def of(cls, descriptor: HardwareDescriptor, campaign: str = "") -> Provenance:
        """Provenance of a campaign on ``descriptor``'s device, with this process's versions."""
        return cls(
            hardware=descriptor.name,
            device_kind=descriptor.kind,
            torch_version=torch.__version__,
            cuda_version=torch.version.cuda or "",
            driver_version=str(descriptor.extra.get("driver_version") or ""),
            flopcast_version=flopcast_version(),
            campaign=campaign,
        )

    def versions(self) -> dict[str, str]:
        """The parts of a measurement key that change when re-measuring is needed."""
        return {k: v for k, v in asdict(self).items() if k != "campaign"}

    def columns(self, key: str) -> dict[str, str]:
        """Provenance columns of one row measured now (``measured_at`` in ISO 8601 UTC)."""
        return {**asdict(self), "key": key, "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

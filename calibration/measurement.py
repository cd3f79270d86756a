"""Result records of measurement windows: frozen dataclasses whose field names carry units."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    """Timing and energy of a repeated workload, from one or more measurement windows.

    Attributes:
        time_s: median time of one repetition over the windows, s.
        time_s_min: fastest window's time per repetition, s.
        time_s_max: slowest window's time per repetition, s.
        n_repeats: repetitions per window.
        n_windows: number of timed windows.
        window_s: duration of one window, s (median).
        energy_j: energy of one repetition, J, or ``None`` when no energy source was available.
        energy_source: ``nvml``, ``rapl``, ``codecarbon-tdp`` or ``none``.
        energy_window_s: duration of the energy window, s (0 when no energy was read).
        avg_power_w: mean power over the energy window, W, or ``None``.
        trusted: whether the values are fit for training the predictor.
        reason: why not trusted (e.g. ``energy window 0.2 s < 1 s``), and caveats that leave the row
            trusted, each prefixed ``note:`` (e.g. ``note: energy missing (nvml: not supported)``);
            empty when there is nothing to say.
    """

    time_s: float
    time_s_min: float
    time_s_max: float
    n_repeats: int
    n_windows: int
    window_s: float
    energy_j: float | None = None
    energy_source: str = "none"
    energy_window_s: float = 0.0
    avg_power_w: float | None = None
    trusted: bool = True
    reason: str = ""

    @property
    def spread(self) -> float:
        """Relative spread of the windows, (max - min) / median."""
        return (self.time_s_max - self.time_s_min) / self.time_s if self.time_s > 0 else float("inf")

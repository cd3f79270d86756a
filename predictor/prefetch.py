"""The step analysis of ``flopcast predict`` run in a forked process while the parent loads the cost model.

``predict`` spends most of its time on two independent things: tracing the model (importing the model's
library, e.g. transformers, and running it on fake tensors) and loading the cost model (importing XGBoost
and reading the boosters). On a machine with two or more cores they can overlap: the parent forks a
child that analyses the step for each device kind the named hardware needs and sends the analyses back
through a pipe, while the parent goes on loading the model. Nothing about the result changes: the child
runs the same :func:`flopcast.features.api.analyze_config`. Where the child cannot help (no ``fork`` on
this platform, one core, an analysis that failed or a child that died) the parent analyses in-process,
so errors read exactly as without the prefetch. ``FLOPCAST_PREFETCH=0`` turns it off.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import Connection

from flopcast.features.analysis import Analysis
from flopcast.features.config import AnalyzeConfig

log = logging.getLogger(__name__)


def _analyse_in_process(config: AnalyzeConfig) -> Analysis:
    from flopcast.features.api import analyze_config

    return analyze_config(config)


def _child(configs: Sequence[AnalyzeConfig], conn: Connection) -> None:
    for config in configs:
        try:
            result: Analysis | None = _analyse_in_process(config)
        except BaseException:  # the parent re-runs it in-process, where the error is reported as usual
            result = None
        conn.send(result)
    conn.close()


def enabled() -> bool:
    """Whether a prefetch can help here: ``fork`` exists, two or more cores, not turned off."""
    return (os.environ.get("FLOPCAST_PREFETCH", "1") != "0" and "fork" in multiprocessing.get_all_start_methods()
            and (os.cpu_count() or 1) >= 2)


def analysis_devices(hardware: Sequence[str]) -> list[str]:
    """The analysis devices (``cuda``/``cpu``) of the ``--hardware`` items resolvable without probing, in order.

    ``local`` and names that do not resolve are skipped: the parent analyses those itself (and reports
    an unknown name as usual).
    """
    from flopcast.calibration.catalog import get_hardware
    from flopcast.predictor.featurize import analysis_device

    devices: list[str] = []
    for name in hardware:
        if name.strip().lower() == "local":
            continue
        try:
            device = analysis_device(get_hardware(name).kind)
        except Exception:
            continue
        if device not in devices:
            devices.append(device)
    return devices


class AnalysisPrefetch:
    """Analyses of ``configs`` computed by a forked child; :meth:`analyse` serves them or works in-process.

    Args:
        configs: the analyses to compute ahead, in the order the parent will most likely ask for them.
    """

    def __init__(self, configs: Sequence[AnalyzeConfig]) -> None:
        self.configs = list(configs)
        self._results: list[Analysis | None] = []
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        if not self.configs:
            return
        ctx = multiprocessing.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)
        sys.stdout.flush()
        sys.stderr.flush()
        self._process = ctx.Process(target=_child, args=(self.configs, send), daemon=True)
        self._process.start()
        send.close()
        self._conn = receive

    @classmethod
    def for_predict(cls, analysis: AnalyzeConfig, hardware: Sequence[str]) -> AnalysisPrefetch:
        """The prefetch of a ``predict`` call: its analysis on each device kind of ``hardware``."""
        devices = analysis_devices(hardware) if enabled() else []
        return cls([replace(analysis, device=d) for d in devices])

    def _receive_until(self, position: int) -> None:
        while len(self._results) <= position:
            try:
                self._results.append(self._conn.recv() if self._conn is not None else None)
            except (EOFError, OSError):  # the child died: the rest is analysed in-process
                log.debug("analysis prefetch: child ended early")
                self._results.extend([None] * (len(self.configs) - len(self._results)))

    def analyse(self, config: AnalyzeConfig) -> Analysis:
        """The analysis of ``config``: the child's if it computed that one, else an in-process one.

        Raises:
            AnalysisError: as :func:`flopcast.features.api.analyze_config` does.
        """
        position = next((i for i, c in enumerate(self.configs) if c == config), None)
        if position is not None:
            self._receive_until(position)
            result = self._results[position]
            if result is not None:
                return result
        return _analyse_in_process(config)

    def close(self) -> None:
        """Stop the child if it is still running and release the pipe."""
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
        if self._process is not None:
            self._process.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def __enter__(self) -> AnalysisPrefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

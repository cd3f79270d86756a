"""The step analysis of ``flopcast predict`` run in a forked process while the parent loads the cost model.

``predict`` spends most of its time on two independent things: tracing the model (importing the model's
library, e.g. transformers, and running it on fake tensors) and loading the cost model (importing XGBoost
and reading the boosters). On a machine with two or more cores they can overlap: the parent forks one
child per device kind the named hardware needs (so a CPU and a GPU analysis also overlap each other);
each analyses the step and sends the analysis back through a pipe, while the parent goes on loading the
model. Nothing about the result changes: a child runs the same
:func:`flopcast.features.api.analyze_config`. Where a child cannot help (no ``fork`` on this platform,
one core, an analysis that failed or a child that died) the parent analyses in-process, so errors read
exactly as without the prefetch. ``FLOPCAST_PREFETCH=0`` turns it off.
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


def _child(config: AnalyzeConfig, conn: Connection) -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        # libgomp is not fork-safe: once the parent has run a parallel region, the child's first one waits
        # forever on the parent's thread team (a model file or import doing real work hung predict). The
        # child only traces fake tensors, so one thread costs nothing.
        torch.set_num_threads(1)
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
    """Analyses of ``configs`` computed by forked children; :meth:`analyse` serves them or works in-process.

    Args:
        configs: the analyses to compute ahead, in the order the parent will most likely ask for them.
    """

    def __init__(self, configs: Sequence[AnalyzeConfig]) -> None:
        self.configs = list(configs)
        self._results: dict[int, Analysis | None] = {}
        self._children: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        if not self.configs:
            return
        ctx = multiprocessing.get_context("fork")
        sys.stdout.flush()
        sys.stderr.flush()
        for config in self.configs:  # one child per analysis: a CPU and a GPU analysis run side by side
            receive, send = ctx.Pipe(duplex=False)
            process = ctx.Process(target=_child, args=(config, send), daemon=True)
            process.start()
            send.close()
            self._children.append((process, receive))

    @classmethod
    def for_predict(cls, analysis: AnalyzeConfig, hardware: Sequence[str]) -> AnalysisPrefetch:
        """The prefetch of a ``predict`` call: its analysis on each device kind of ``hardware``."""
        devices = analysis_devices(hardware) if enabled() else []
        return cls([replace(analysis, device=d) for d in devices])

    def _received(self, position: int) -> Analysis | None:
        if position not in self._results:
            try:
                self._results[position] = self._children[position][1].recv()
            except (EOFError, OSError):  # the child died: analysed in-process instead
                log.debug("analysis prefetch: child %d ended early", position)
                self._results[position] = None
        return self._results[position]

    def analyse(self, config: AnalyzeConfig) -> Analysis:
        """The analysis of ``config``: the child's if it computed that one, else an in-process one.

        Raises:
            AnalysisError: as :func:`flopcast.features.api.analyze_config` does.
        """
        position = next((i for i, c in enumerate(self.configs) if c == config), None)
        result = self._received(position) if position is not None else None
        return result if result is not None else _analyse_in_process(config)

    def close(self) -> None:
        """Stop the children still running and release the pipes."""
        for process, conn in self._children:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
            conn.close()
        self._children = []

    def __enter__(self) -> AnalysisPrefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

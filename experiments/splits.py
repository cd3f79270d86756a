"""What an evaluation may learn from and what it scores: the frozen final test split and the leak rule.

The final test split (``test_split.json``: whole zoo families and one device's steps) is dropped from every
development run and scored only by ``evaluate.py --final``. The leak rule keeps a held-out model family's
shapes out of training: a microbenchmark row derived from a model (its ``source_model``: the target of the
``--ops-from`` table it came from, or the zoo model its sampler range was widened for) counts as that model's
family, and is left out whenever that family is held out.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flopcast.calibration.microbench import family_names, get_family
from flopcast.datasets.loader import Dataset, trusted_rows

TEST_SPLIT = Path(__file__).resolve().parent / "test_split.json"


def subset(ds: Dataset, microbench: pd.DataFrame | None = None, steps: pd.DataFrame | None = None,
           hardware: list[str] | None = None) -> Dataset:
    """A dataset restricted to some rows and devices."""
    keep = hardware or ds.hardware
    mb = ds.microbench if microbench is None else microbench
    st = ds.steps if steps is None else steps
    return Dataset(mb[mb["hardware"].isin(keep)].reset_index(drop=True), st[st["hardware"].isin(keep)].reset_index(
        drop=True), {k: v for k, v in ds.descriptors.items() if k in keep}, ds.checksums, ds.meta, ds.version)


@dataclass(frozen=True)
class FrozenSplit:
    """The final test split.

    Attributes:
        families: zoo families whose steps, on every device, are test steps.
        device_steps: devices whose steps (all families) are test steps; their op rows stay trainable.
    """

    families: tuple[str, ...]
    device_steps: tuple[str, ...]

    @classmethod
    def load(cls, path: Path = TEST_SPLIT) -> FrozenSplit:
        """The split stored in ``path`` (default: the repository's ``experiments/test_split.json``)."""
        data = json.loads(Path(path).read_text())
        return cls(tuple(data["families"]), tuple(data["device_steps"]))

    def is_test_step(self, steps: pd.DataFrame) -> np.ndarray:
        """Which step rows belong to the final test split."""
        return (steps["family"].astype(str).isin(self.families)
                | steps["hardware"].astype(str).isin(self.device_steps)).to_numpy()


def model_families(steps: pd.DataFrame) -> dict[str, str]:
    """The zoo family of every model a row may name: the zoo registry's, then the step table's."""
    from flopcast.calibration.zoo import ZOO

    out = dict(zip(steps["model"].astype(str), steps["family"].astype(str), strict=True))
    out.update({name: m.family for name, m in ZOO.items()})
    return out


def derived_models(mb: pd.DataFrame) -> pd.Series:
    """Per microbenchmark row, the models its shapes derive from (a frozenset, empty for sampled shapes).

    The ``source_model`` column, joined with the zoo models the row's family widened its sampler for
    (:meth:`~flopcast.calibration.microbench.base.Family.derived_from`; it also covers rows measured before the
    column existed).
    """
    out = pd.Series([frozenset()] * len(mb), index=mb.index, dtype=object)
    named = mb["source_model"].fillna("").astype(str) != ""
    for i, text in mb.loc[named, "source_model"].astype(str).items():
        out[i] = frozenset(s for s in text.split(",") if s)
    known = set(family_names())
    widened = [f for f in mb["family"].astype(str).unique() if f in known and get_family(f).widened_for]
    for i, family, config in mb.loc[mb["family"].isin(widened), ["family", "config"]].itertuples():
        models = get_family(family).derived_from(json.loads(config))
        if models:
            out[i] = out[i] | frozenset(models)
    return out


def derived_from(mb: pd.DataFrame, families: Collection[str], family_of: Mapping[str, str]) -> np.ndarray:
    """The leak rule: which rows derive from a model of one of ``families`` (a model not in ``family_of``: none)."""
    wanted = set(families)
    return np.array([any(family_of.get(m) in wanted for m in models) for models in derived_models(mb)], bool)


def development(ds: Dataset, split: FrozenSplit) -> Dataset:
    """``ds`` without the final test steps and without the op rows derived from the final test families."""
    leak = derived_from(ds.microbench, split.families, model_families(ds.steps))
    return subset(ds, ds.microbench[~leak], ds.steps[~split.is_test_step(ds.steps)])


def final_test_steps(ds: Dataset, split: FrozenSplit) -> pd.DataFrame:
    """The trusted steps of the final test split."""
    return trusted_rows(ds.steps[split.is_test_step(ds.steps)])

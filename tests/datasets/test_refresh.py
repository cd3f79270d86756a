from __future__ import annotations

import json
import random

import pandas as pd

from flopcast.calibration.microbench import get_family
from flopcast.calibration.microbench.static import static_features
from flopcast.datasets.refresh import main, refreshed


def _rows():
    rows = []
    rng = random.Random(0)
    for family in ("matmul", "softmax", "sdpa_fwd"):
        fam = get_family(family)
        config = fam.fit({**fam.sample(rng), "dtype": "fp32"}, 1 << 22)
        features, problem = static_features(fam, config)
        assert not problem
        rows.append({**features, "family": family, "config": json.dumps(config), "time_s": 1e-3, "key": family})
    return pd.DataFrame(rows)


def test_current_rows_are_left_alone_and_stale_features_are_traced_again():
    table = _rows()
    _, changed = refreshed(table)
    assert changed == 0
    stale = table.copy()
    stale.loc[0, "flops"] = stale.loc[0, "flops"] * 2 + 7
    stale.loc[0, "time_s"] = 5.0
    fixed, changed = refreshed(stale)
    assert changed == 1
    assert fixed.loc[0, "flops"] == table.loc[0, "flops"]
    assert fixed.loc[0, "time_s"] == 5.0  # measured columns are never rewritten


def test_cli_without_folder_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err

"""Every calibration-size zoo model analyses in infer mode with no unsupported op (CPU and CUDA, fp32 and bf16)."""

import pytest

from flopcast.calibration.zoo import ZOO
from flopcast.features.api import analyze

# Full-size (GPU campaign) variants have no CPU batch sizes; their ops are those of the small ones.
SMALL = sorted(n for n, m in ZOO.items() if m.batch_sizes)
# (model, device, precision) -> {op: count} still unsupported, each with its reason. None today.
KNOWN_UNSUPPORTED: dict[tuple[str, str, str], dict[str, int]] = {}


def test_zoo_has_small_models():
    assert len(SMALL) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("name", SMALL)
def test_infer_has_no_unsupported_ops(name, device, precision):
    zm = ZOO[name]
    a = analyze(
        zm.build,
        zm.inputs,
        batch_size=1,
        mode="infer",
        device=device,
        precision=precision,
        optimizer="none",
        target=name,
    )
    assert a.flops > 0
    assert a.unsupported_ops == KNOWN_UNSUPPORTED.get((name, device, precision), {})

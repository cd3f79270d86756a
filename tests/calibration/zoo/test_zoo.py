"""Tests of the model zoo: every model trains one step on CPU; registry contract; reference param counts."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from flopcast.calibration import zoo
from flopcast.calibration.zoo import ZOO, ZooModel, get, names
from flopcast.calibration.zoo.mobilenet import mobilenet_v2
from flopcast.calibration.zoo.resnet import resnet18, resnet50
from flopcast.calibration.zoo.vgg import vgg11, vgg11_bn
from flopcast.features.step import first_tensor  # the model's main output, as the traced step takes it

_SPEC = re.compile(r"^(?P<dtype>\w+)\[(?P<dims>[^\]]*)\](?:<(?P<high>\d+))?$")


def make_input(spec: str, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random tensor for an input spec such as ``float32[B,3,32,32]`` or ``int64[B,128]<50257``."""
    match = _SPEC.match(spec)
    assert match, f"bad input spec {spec!r}"
    dtype = getattr(torch, match["dtype"])
    shape = [batch if d.strip() == "B" else int(d) for d in match["dims"].split(",")]
    if dtype.is_floating_point:
        return torch.randn(shape, dtype=dtype, generator=generator)
    return torch.randint(0, int(match["high"]), shape, dtype=dtype, generator=generator)




def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True, scope="module")
def _few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


# Full-size (GPU-only) variants have no CPU batch sizes: a real CPU step of them is too slow for CI, and
# the shape-only test below covers their structure.
CPU_SIZED = sorted(n for n, m in ZOO.items() if m.batch_sizes)


@pytest.mark.parametrize("name", CPU_SIZED)
def test_model_trains_one_step(name: str) -> None:
    entry = ZOO[name]
    torch.manual_seed(0)
    model = entry.build()
    model.train()
    generator = torch.Generator().manual_seed(0)
    inputs = [make_input(spec, 2, generator) for spec in entry.inputs]
    out = first_tensor(model(*inputs))
    assert out.shape[0] == 2
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads if g is not None)
    assert sum(g is not None for g in grads) >= len(grads) // 2


# nn.TransformerEncoder deep-copies its layer template, which touches data pointers of fake tensors.
@pytest.mark.filterwarnings("ignore:Accessing the data pointer of FakeTensor")
@pytest.mark.parametrize("name", sorted(ZOO))
def test_model_runs_on_shape_only_tensors(name: str) -> None:
    """Structure does not depend on values: build and train under a FakeTensorMode (no real data)."""
    entry = ZOO[name]
    with FakeTensorMode():
        model = entry.build()
        out = first_tensor(model(*(make_input(spec, 3) for spec in entry.inputs)))
        out.float().sum().backward()
    assert out.shape[0] == 3


@pytest.mark.parametrize("name", sorted(ZOO))
def test_entry_is_well_formed(name: str) -> None:
    entry = ZOO[name]
    assert isinstance(entry, ZooModel)
    assert entry.name == name
    assert entry.family and entry.description
    assert all(b > 0 for b in entry.batch_sizes)
    published = name in {m.name for m in zoo.published.PUBLISHED}  # measured by others: no batch sizes of ours
    assert (bool(entry.gpu_batch_sizes) != published) and all(b > 0 for b in entry.gpu_batch_sizes)
    for spec in entry.inputs:
        match = _SPEC.match(spec)
        assert match, spec
        assert match["dims"].split(",")[0] == "B", spec
        assert (match["high"] is None) == match["dtype"].startswith("float"), spec


def test_zoo_size_and_families() -> None:
    assert len(ZOO) >= 18
    assert len({m.family for m in ZOO.values()}) >= 10
    assert len(names()) == len(set(names())) == len(ZOO)
    assert names("resnet") == ["resnet18", "resnet18-224", "resnet50", "resnet50-224"]
    assert names("no-such-family") == []


def test_get_misspelt_name_suggests_close_match() -> None:
    assert get("resnet18") is ZOO["resnet18"]
    with pytest.raises(KeyError, match="resnet18"):
        get("resnet19")
    with pytest.raises(KeyError, match="mobilenetv2"):
        get("mobilnetv2")


def test_another_model_under_a_taken_name_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        zoo.register(dataclasses.replace(ZOO["lenet5"], build=lambda: torch.nn.Linear(2, 2)))


def test_a_zoo_file_analysed_by_path_keeps_its_models(capsys) -> None:
    from flopcast.predictor.main import main

    path = Path(zoo.__file__).parent / "mlp.py"  # imported again under another module name
    code = main(["analyze", f"{path}:mlp_small", "--input", "float32[B,784]", "--mode", "infer", "--json",
                 "--device", "cpu", "--optimizer", "none"])
    out, err = capsys.readouterr()
    assert code == 0, err
    matmul_flops = 2 * (784 * 512 + 512 * 512 + 512 * 10)  # batch 1, forward only (+ bias adds, ReLUs)
    assert matmul_flops <= json.loads(out)["flops"] < 1.01 * matmul_flops
    assert zoo.register(ZOO["mlp-small"]) is ZOO["mlp-small"]


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        (resnet18, 11_689_512),
        (resnet50, 25_557_032),
        (mobilenet_v2, 3_504_872),
        (lambda: vgg11(num_classes=1000, pool_size=7, classifier_width=4096), 132_863_336),
        (lambda: vgg11_bn(num_classes=1000, pool_size=7, classifier_width=4096), 132_868_840),
    ],
    ids=["resnet18", "resnet50", "mobilenetv2", "vgg11-full", "vgg11-bn-full"],
)
def test_full_size_param_counts_match_torchvision(builder, expected: int) -> None:
    with torch.device("meta"):
        model = builder()
    assert param_count(model) == expected


@pytest.mark.parametrize(("name", "kv_heads", "cache_len"),
                         [("gpt2-decode-c128", 8, 128), ("llama-decode-c512", 2, 512)])
def test_decode_step_attends_one_token_over_the_cache_it_is_given(name: str, kv_heads: int, cache_len: int) -> None:
    from flopcast.features.api import analyze

    entry = ZOO[name]
    assert entry.inputs[1] == f"float32[B,8,{kv_heads},{cache_len},64]"  # 4 layers x (keys, values)
    a = analyze(entry.build, list(entry.inputs), batch_size=2, mode="infer", device="cpu")
    attention = sum(o.flops for o in a.ops if o.category.value == "attention")
    # 4 layers x B 2 x 8 query heads x (C + 1) keys x (4 x head_dim 64 + 9): Q K^T, P V, scale and softmax
    assert attention == 4 * 2 * 8 * (cache_len + 1) * (4 * 64 + 9)

"""DDP's buckets as flopcast traces them against what torch.distributed issues: two gloo processes on CPU."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from flopcast.features.config import AnalyzeConfig
from flopcast.predictor.parallel.plan import ParallelPlan
from flopcast.predictor.parallel.predict import ready_order
from flopcast.predictor.parallel.traffic import ddp_buckets, ddp_collectives
from tests.predictor.parallel.conftest import sharded

NET = '''import torch
INPUTS = ["float32[B,512]"]


def build():
    return torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                               torch.nn.ReLU(), torch.nn.Linear(512, 256))
'''
"""Three linears of 1.0, 1.0 and 0.5 MiB of fp32 gradients: DDP's 1 MiB first bucket closes inside the model."""
ITERATIONS = 3
"""DDP rebuilds its buckets in gradient-ready order after the first iteration; the last one is the steady state."""


def _worker(rank: int, world: int, folder: str) -> None:
    sys.path.insert(0, folder)
    from net import build

    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world)
    torch.manual_seed(rank)
    model = torch.nn.parallel.DistributedDataParallel(build())
    issued: list[int] = []

    def hook(_, bucket):  # unannotated: DDP checks a hook's annotations as objects, not postponed strings
        issued.append(bucket.buffer().numel() * bucket.buffer().element_size())
        return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda f: f.value()[0])

    model.register_comm_hook(None, hook)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(ITERATIONS):
        issued.clear()
        model(torch.randn(4, 512)).mean().backward()
        opt.step()
        opt.zero_grad()
    if rank == 0:
        with open(f"{folder}/issued.json", "w") as f:
            json.dump(issued, f)
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch built without gloo")
def test_traced_ddp_buckets_are_the_all_reduces_ddp_issues(tmp_path):
    (tmp_path / "net.py").write_text(NET)
    # spawned, not forked: a fork of a process whose torch already runs threads can hang in gloo
    mp.start_processes(_worker, args=(2, str(tmp_path)), nprocs=2, start_method="spawn")
    issued = json.loads((tmp_path / "issued.json").read_text())

    a, record = sharded(AnalyzeConfig(target=f"{tmp_path / 'net.py'}:build", batch_size=4), 1)
    order = ready_order(record, a, [1.0] * len(a.ops))
    buckets = ddp_buckets([record.params[i] for _, i in order])
    traced = ddp_collectives(buckets, ParallelPlan.parse("dp", 2).group("dp"))
    assert [c.bytes for c in traced] == issued  # count and bytes, in launch order
    assert issued == [(256 * 512 + 256 + 512 * 512 + 512) * 4, (512 * 512 + 512) * 4]

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from flopcast.calibration.descriptor import HardwareDescriptor
from flopcast.features.config import AnalyzeConfig
from flopcast.predictor.analysis_cache import StepAnalysis
from flopcast.predictor.parallel.plan import ParallelError
from flopcast.predictor.parallel.predict import ParallelConfig, analyse_target, predict_parallel
from flopcast.predictor.parallel.schedule import pipeline_s
from flopcast.predictor.parallel.stages import ddp_memory
from flopcast.predictor.power import idle_power_w
from flopcast.predictor.predict import PredictConfig, predict_on
from tests.predictor.parallel.conftest import gpt2_config, sharded


def _config(gpu_file, analysis, parallel, gpus, **kw):
    predict = PredictConfig(analysis=analysis, hardware=(str(gpu_file),), **kw.pop("predict", {}))
    return ParallelConfig(predict=predict, gpus=gpus, parallel=parallel, interconnect=kw.pop("interconnect", None),
                          **kw)


@pytest.fixture(scope="module")
def mlp(mlp_target):
    return AnalyzeConfig(target=mlp_target, batch_size=32)


def test_ddp_prices_each_replica_by_predict_on_and_adds_what_it_waits_for(model, gpu_file, mlp):
    [p] = predict_parallel(_config(gpu_file, mlp, "dp", 4), model)
    [role] = p.roles
    a, record = sharded(replace(mlp, batch_size=8), 1)
    grads = sum(x.bytes for x in record.params if x.trainable)
    d = HardwareDescriptor.load(gpu_file)
    alone = predict_on(model, StepAnalysis.of(ddp_memory(a, grads)), d, "fp32", "train")
    assert role.prediction.step_time_s == alone.step_time_s  # one cost path: the replica's own step
    assert role.prediction.est_peak_memory_bytes == a.peak_memory_bytes + grads  # DDP's bucket copy
    assert p.step_time_s[1] == pytest.approx(alone.step_time_s[1] + role.exposed_s)
    assert [c.collective.op for c in role.collectives] == ["all_reduce"]
    assert p.scaling_efficiency == pytest.approx(p.single_gpu.step_time_s[1] / (4 * p.step_time_s[1]))


def test_energy_is_every_gpu_working_then_idling_and_no_host_without_a_system(model, gpu_file, mlp):
    [p] = predict_parallel(_config(gpu_file, mlp, "dp", 4), model)
    [role] = p.roles
    d = HardwareDescriptor.load(gpu_file)
    wait = p.step_time_s[1] - role.busy_s[1]
    assert p.gpu_energy_j == pytest.approx(4 * (role.prediction.step_energy_j[1] + idle_power_w(d) * wait))
    assert p.host_energy_j == 0 and any("host power not counted" in n for n in p.notes)


def test_a_dgx_node_adds_its_power_beyond_the_gpus(model, mlp):
    c = ParallelConfig(predict=PredictConfig(analysis=mlp, hardware=("h100",)), gpus=4, parallel="dp")
    [p] = predict_parallel(c, model)
    # dgx-h100: 10.2 kW max, 8 x 700 W GPUs; 4 of its 8 GPUs used
    assert p.host_energy_j == pytest.approx((10200 - 8 * 700) * 4 / 8 * p.step_time_s[1])


def test_tensor_parallel_waits_for_every_all_reduce(model, gpu_file, mlp):
    [p] = predict_parallel(_config(gpu_file, mlp, "tp", 2), model)
    [role] = p.roles
    assert role.exposed_s == pytest.approx(sum(c.total_s for c in role.collectives))
    assert p.comm_exposed_s == pytest.approx(role.exposed_s)


def test_pipeline_step_follows_the_schedule_of_its_stages(model, gpu_file):
    c = _config(gpu_file, gpt2_config(8), "pp", 2, micro_batches=4)
    [p] = predict_parallel(c, model)
    assert len(p.roles) == 2 and p.bubble_share == pytest.approx(1 / 5)
    fb = [r.prediction.step_time_s[1] * (r.phase_share["forward"] + r.phase_share["backward"]) for r in p.roles]
    p2p = max(x.time_s for r in p.roles for x in r.collectives if x.collective.op == "send_recv")
    after = [r.prediction.step_time_s[1] * r.phase_share["optimizer"] + r.exposed_s for r in p.roles]
    assert p.step_time_s[1] == pytest.approx(pipeline_s(fb, 4, p2p) + max(after))
    assert c.micro_batch_size == 2


def test_fsdp_holds_less_than_ddp(model, gpu_file):
    [ddp] = predict_parallel(_config(gpu_file, gpt2_config(8), "dp", 4), model)
    [fsdp] = predict_parallel(_config(gpu_file, gpt2_config(8), "fsdp", 4), model)
    assert fsdp.roles[0].prediction.est_peak_memory_bytes < ddp.roles[0].prediction.est_peak_memory_bytes
    assert {c.collective.op for c in fsdp.roles[0].collectives} == {"all_gather", "reduce_scatter"}


def test_run_totals_count_global_batches(model, gpu_file, mlp):
    [p] = predict_parallel(_config(gpu_file, mlp, "dp", 4, predict={"dataset_size": 1000, "epochs": 2}), model)
    assert p.extra["steps"] == math.ceil(1000 / 32) * 2
    assert p.extra["run_time_s"] == pytest.approx(p.step_time_s[1] * p.extra["steps"])


@pytest.mark.parametrize(("change", "message"), [
    ({"gpus": 3, "parallel": "dp"}, "cannot be split evenly over 3 data-parallel replicas"),
    ({"gpus": 4, "parallel": "pp", "micro_batches": 3}, "x 3 micro-batches"),
])
def test_a_batch_that_does_not_split_is_one_line(gpu_file, mlp, change, message):
    with pytest.raises(ParallelError, match=message):
        _config(gpu_file, mlp, **change)


def test_cpus_and_overfull_nodes_are_refused(model, mlp):
    with pytest.raises(ParallelError, match="--gpus predicts GPUs: cpu-generic-avx2-8c is a cpu"):
        predict_parallel(ParallelConfig(PredictConfig(analysis=mlp, hardware=("cpu",)), gpus=2), model)
    big = replace(mlp, batch_size=64)
    with pytest.raises(ParallelError, match="a dgx-h100 node holds 8: add --nodes 2"):
        predict_parallel(ParallelConfig(PredictConfig(analysis=big, hardware=("h100",)), gpus=16), model)


def test_the_cli_analysis_traces_every_layer_through_the_transform(mlp_target):
    seen = []

    def transform(build):
        seen.append(build)
        return build

    a = analyse_target(AnalyzeConfig(target=mlp_target, batch_size=2), transform)
    assert seen and a.params == 4680

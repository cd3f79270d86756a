from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from flopcast.calibration import tracking
from flopcast.calibration.campaign import run_campaign
from flopcast.calibration.config import CalibrateConfig
from flopcast.calibration.tracking import CampaignRun, TrackingUnreachableError, check_reachable, flatten


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast():
    t0 = time.monotonic()
    with pytest.raises(TrackingUnreachableError, match=r"http://127.0.0.1:\d+ is unreachable"):
        check_reachable(f"http://127.0.0.1:{_free_port()}", timeout_s=1.0)
    assert time.monotonic() - t0 < 5


def test_local_stores_need_a_writable_folder(tmp_path):
    check_reachable(f"sqlite:///{tmp_path}/sub/mlflow.db")
    check_reachable(str(tmp_path / "mlruns"))
    (tmp_path / "file").write_text("")
    with pytest.raises(TrackingUnreachableError, match="not a writable directory"):
        check_reachable(f"sqlite:///{tmp_path}/file/mlflow.db")


def test_default_uri_is_mlflows_own(monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri(None) == mlflow.get_tracking_uri()
    assert tracking.resolve_uri("http://x:5000") == "http://x:5000"


def test_flatten_nests_and_cuts():
    out = flatten("hw", {"name": "h", "peak": {"fp32": 1.0}, "flags": ["a", "b"], "long": "x" * 7000})
    assert out["hw.peak.fp32"] == "1.0" and out["hw.flags"] == '["a", "b"]'
    assert len(out["hw.long"]) == tracking.MAX_PARAM_CHARS


def test_campaign_run_logs_to_a_local_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = CampaignRun(uri, "flopcast-test", "r")
    run.log_params({f"p{i}": str(i) for i in range(150)})
    run.log_metrics({"rows": 3, "missing": None})
    (tmp_path / "t.parquet").write_bytes(b"x")
    run.log_artifacts([tmp_path / "t.parquet", tmp_path / "absent.parquet"])
    run.end()
    got = MlflowClient(tracking_uri=uri).get_run(run.run_id)
    assert len(got.data.params) == 150 and got.data.metrics == {"rows": 3.0}
    assert got.info.status == "FINISHED"


def test_codecarbon_failure_is_recorded_not_raised(tmp_path, monkeypatch):
    import codecarbon

    def broken(**kwargs):
        raise RuntimeError("no hardware info")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", broken)
    with tracking.track_emissions(tmp_path, "FRA") as emissions:
        pass
    assert emissions.kg_co2eq is None and "no hardware info" in emissions.error


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--default-artifact-root", str(tmp_path / "art")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the server's uvicorn and huey workers go with it
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(uri + "/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start")
            time.sleep(0.3)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.integration
def test_campaign_lands_on_a_real_mlflow_server(mlflow_server, tmp_path):
    cfg = CalibrateConfig(out_dir=tmp_path / "out", quick=True, configs_per_family=1, families=("matmul", "norm"),
                          zoo=("mlp-small",), step_batch_sizes=(2,), step_modes=("infer",), energy=False,
                          min_window_s=0.01, tracking_uri=mlflow_server, progress=False)
    result = run_campaign(cfg)
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(result.campaign)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["rows_microbench"] == 2 and run.data.metrics["rows_steps"] == 1
    assert "microbench.parquet" in {a.path for a in client.list_artifacts(run.info.run_id)}


QUIET = """
import sys
from pathlib import Path
from flopcast.calibration.tracking import CampaignRun, track_emissions
out = Path(sys.argv[1])
run = CampaignRun(f"sqlite:///{out / 'mlflow.db'}", "flopcast-test", "calibrate-test")
with track_emissions(out, "FRA") as emissions:
    pass
run.end()
print(emissions.error or "ok")
"""


def test_a_first_campaign_prints_no_mlflow_or_codecarbon_lines(tmp_path):
    out = subprocess.run([sys.executable, "-c", QUIET, str(tmp_path)], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert out.stderr == "", out.stderr  # was: mlflow's "Creating initial MLflow database tables...",
    assert (tmp_path / "mlflow.db").is_file()  # codecarbon's "offline tracker init" and "Multiple instances"

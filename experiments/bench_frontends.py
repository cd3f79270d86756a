"""Trace time of the TF/Keras front end on a ResNet-50-sized Keras model (target: < 10 s), plus NumPy/ONNX.

Run: ``python experiments/bench_frontends.py [--batch-size 32] [--mode train]``. Prints one line per
measurement: the model, ops recorded, GFLOPs and the wall time of the analysis (trace + costing).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from flopcast.features.config import AnalyzeConfig
from flopcast.features.frontends import analyze_with_frontend


def bench(name: str, framework: str, obj: object, config: AnalyzeConfig) -> float:
    start = time.perf_counter()
    a = analyze_with_frontend(framework, config, obj)
    elapsed = time.perf_counter() - start
    print(f"{name:<28} {config.mode:<5} ops={len(a.ops):>6} GFLOPs={a.flops / 1e9:9.2f} "
          f"unsupported={sum(a.unsupported_ops.values()):>3} time={elapsed:6.2f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mode", choices=("infer", "train", "both"), default="both")
    args = parser.parse_args()
    import keras

    modes = ("infer", "train") if args.mode == "both" else (args.mode,)
    for mode in modes:
        def resnet50() -> keras.Model:
            return keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))

        cfg = AnalyzeConfig(target="keras:ResNet50", inputs=("float32[B,224,224,3]",),
                            batch_size=args.batch_size, mode=mode, device="cpu", optimizer="adam")
        t = bench("keras ResNet50 (25.6M)", "tf", resnet50, cfg)
        print(f"  target < 10 s: {'ok' if t < 10 else 'MISSED'}")

    import numpy as np

    def cg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        x = np.zeros_like(b)
        r = b - a @ x
        p, rs = r.copy(), r @ r
        for _ in range(200):
            ap = a @ p
            alpha = rs / (p @ ap)
            x, r = x + alpha * p, r - alpha * ap
            rs_new = r @ r
            p, rs = r + (rs_new / rs) * p, rs_new
        return x

    bench("numpy CG 200 iters N=4096", "numpy", cg,
          AnalyzeConfig(target="cg", inputs=("float64[N,N]", "float64[N]"), dims={"N": 4096}, mode="infer"))


if __name__ == "__main__":
    main()

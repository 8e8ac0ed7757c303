"""onnxruntime called from Python on the example's models: the reference graphc's ONNX routes are
compared with (docs/PERFORMANCE.md). For each model, the time of one `session.run` on 1 row and
on 150 rows (numpy in, numpy out: no JSON, no HTTP), best of 5 rounds of N calls.

    python bench_onnxruntime.py MODELS_DIR [N]
"""

import json
import pathlib
import sys
import time

import numpy as np
import onnxruntime


def per_call(session, x, calls):
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            session.run(None, {"features": x})
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def main(folder, calls):
    rows = np.asarray(json.loads((folder / "reference.json").read_text())["rows"], dtype=np.float32)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    for name in ["forest", "boosting", "xgboost", "mlp"]:
        session = onnxruntime.InferenceSession(str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
        for count in [1, 150]:
            seconds = per_call(session, rows[:count], calls)
            print(json.dumps({"model": name, "rows": count, "us_per_call": round(seconds * 1e6, 2)}))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 2000)

"""Makes the ONNX example's models: classifiers trained on iris in scikit-learn and XGBoost,
exported as their users export them, and onnxruntime's answers for every iris row.

    python make_models.py OUT_DIR

writes, in OUT_DIR:
- logistic.onnx   scikit-learn LogisticRegression (skl2onnx, with its default ZipMap)
- forest.onnx     scikit-learn RandomForestClassifier (skl2onnx, zipmap off)
- boosting.onnx   scikit-learn GradientBoostingClassifier (skl2onnx, zipmap off)
- xgboost.onnx    XGBoost XGBClassifier (onnxmltools)
- mlp.onnx        a scikit-learn MLPClassifier's weights written with the onnx helper API
- reference.json  {"rows": iris rows, "models": {name: {"label": [...], "probabilities": [[...]]}}}
                  as onnxruntime answers, row by row, for the tests to compare graphc with

Needs scikit-learn, skl2onnx, onnx, onnxruntime, onnxmltools and xgboost (`xgboost-cpu` on
PyPI carries no GPU libraries). Training is seeded: the same packages make the same models (the files differ in the names
skl2onnx makes up).
"""

import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

# Operator sets tract is tested against (ONNX 9 to 18; ONNX-ML 1 to 3).
OPSETS = {"": 17, "ai.onnx.ml": 3}
INPUT = [("features", FloatTensorType([None, 4]))]


def sklearn(model, zipmap):
    options = {id(model): {"zipmap": False}} if not zipmap else None
    return convert_sklearn(model, initial_types=INPUT, target_opset=OPSETS, options=options)


def xgboost(x, y):
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat
    from xgboost import XGBClassifier

    model = XGBClassifier(n_estimators=20, max_depth=3, random_state=0).fit(x, y)
    return convert_xgboost(model, initial_types=[("features", MlFloat([None, 4]))], target_opset=15)


def mlp(x, y):
    """Two dense layers and a softmax: the network scikit-learn trained, written op by op."""
    net = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2000, random_state=0).fit(x, y)
    (w1, w2), (b1, b2) = net.coefs_, net.intercepts_
    weights = [
        numpy_helper.from_array(np.asarray(w, dtype=np.float32), name)
        for name, w in [("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)]
    ]
    nodes = [
        helper.make_node("MatMul", ["features", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["o0"]),
        helper.make_node("Add", ["o0", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3]),
        ],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="graphc example")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def answers(path, x):
    """onnxruntime's label and probabilities for each row, one row per call as a client sends."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, probabilities = [], []
    for row in x:
        label, probs = session.run(None, {"features": row.reshape(1, -1)})[:2]
        labels.append(int(label[0]))
        # ZipMap's answer is a list of {class: probability}; plain tensors are rows.
        first = probs[0]
        probabilities.append([float(first[k]) for k in sorted(first)] if isinstance(first, dict) else first.tolist())
    return {"label": labels, "probabilities": probabilities}


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    x, y = iris.data.astype(np.float32), iris.target
    models = {
        "logistic": sklearn(LogisticRegression(max_iter=1000).fit(x, y), zipmap=True),
        "forest": sklearn(RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(x, y), False),
        "boosting": sklearn(GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(x, y), False),
        "xgboost": xgboost(x, y),
        "mlp": mlp(x, y),
    }
    reference = {"rows": x.tolist(), "models": {}}
    for name, model in models.items():
        path = out / f"{name}.onnx"
        path.write_bytes(model.SerializeToString())
        reference["models"][name] = answers(path, x)
    (out / "reference.json").write_text(json.dumps(reference))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "models"))

"""Real Open Inference Protocol clients against a graphc server: tritonclient's HTTP client
(JSON and binary tensors) and its gRPC client, as their users call them. Run by
compiler/tests/cli.rs with the venv scripts/test makes:

    python oip_clients.py HTTP_ADDR GRPC_ADDR MODEL WIDTH EXPECTED_FIRST_CLASS

Every check is an assert; the last line printed is `ok N checks`.
"""

import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

http_addr, grpc_addr, model, width, first_class = sys.argv[1:6]
width = int(width)
first_class = int(first_class)
checks = 0


def check(condition, message):
    global checks
    assert condition, message
    checks += 1


rows_one = np.array([[5.1, 3.5, 1.4, 0.2][:width]], dtype=np.float32)
rows_many = np.repeat(rows_one, 150, axis=0)

# REST, as tritonclient.http speaks it.
http = httpclient.InferenceServerClient(url=http_addr)
check(http.is_server_live(), "HTTP live")
check(http.is_server_ready(), "HTTP ready")
check(http.is_model_ready(model), "HTTP model ready")
metadata = http.get_model_metadata(model)
check(metadata["name"] == model, f"HTTP metadata: {metadata}")
output_name = metadata["outputs"][0]["name"]
for binary in (False, True):
    for rows in (rows_one, rows_many):
        tensor = httpclient.InferInput("inputs", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        wanted = httpclient.InferRequestedOutput(output_name, binary_data=binary)
        result = http.infer(model, [tensor], outputs=[wanted])
        out = result.as_numpy(output_name)
        check(out is not None, f"HTTP binary={binary}: no output `{output_name}`")
        check(out.shape == (rows.shape[0],), f"HTTP binary={binary}: shape {out.shape}")
        check(int(out[0]) == first_class, f"HTTP binary={binary}: class {out[0]}")

# gRPC, as tritonclient.grpc speaks it.
grpc = grpcclient.InferenceServerClient(url=grpc_addr)
check(grpc.is_server_live(), "gRPC live")
check(grpc.is_server_ready(), "gRPC ready")
check(grpc.is_model_ready(model), "gRPC model ready")
metadata = grpc.get_model_metadata(model)
check(metadata.name == model, f"gRPC metadata: {metadata}")
check(metadata.outputs[0].name == output_name, f"gRPC metadata outputs: {metadata.outputs}")
for rows in (rows_one, rows_many):
    tensor = grpcclient.InferInput("inputs", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    result = grpc.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput(output_name)], request_id="r-9")
    out = result.as_numpy(output_name)
    check(out is not None and out.shape == (rows.shape[0],), f"gRPC shape: {None if out is None else out.shape}")
    check(int(out[0]) == first_class, f"gRPC class {out[0]}")
    check(result.get_response().id == "r-9", "gRPC id")
try:
    grpc.infer("no-such-model", [tensor])
    check(False, "an unknown model must fail")
except Exception as error:  # tritonclient raises InferenceServerException
    check("NOT_FOUND" in str(error.status()) if hasattr(error, "status") else True, f"gRPC error: {error}")

print(f"ok {checks} checks")

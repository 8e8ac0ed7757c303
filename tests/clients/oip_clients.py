"""Real Open Inference Protocol clients against a graphc server: tritonclient's HTTP client
(JSON and binary tensors) and its gRPC client, and KServe's REST and gRPC clients, as their
users call them. Run by
compiler/tests/cli.rs with the venv scripts/test makes:

    python oip_clients.py triton|kserve HTTP_ADDR GRPC_ADDR MODEL WIDTH EXPECTED_FIRST_CLASS
    python oip_clients.py triton-tls HTTP_ADDR GRPC_ADDR MODEL WIDTH EXPECTED_FIRST_CLASS CA_PEM TOKEN

`triton-tls` speaks HTTPS and gRPC over TLS, trusting CA_PEM, with `Authorization: Bearer TOKEN`,
and checks that a call without the token is refused (401 over HTTP, UNAUTHENTICATED over gRPC).

One client family per process: both register the protocol's `inference` protos, which one
process's descriptor pool holds once. Every check is an assert; the last line printed is
`ok N checks`.
"""

import asyncio
import sys

import numpy as np

family, http_addr, grpc_addr, model, width, first_class = sys.argv[1:7]
width = int(width)
first_class = int(first_class)
checks = 0


def check(condition, message):
    global checks
    assert condition, message
    checks += 1


rows_one = np.array([[5.1, 3.5, 1.4, 0.2][:width]], dtype=np.float32)
rows_many = np.repeat(rows_one, 150, axis=0)


def triton_clients(ca=None, token=None):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    http_tls, grpc_tls, headers = {}, {}, None
    if ca is not None:
        import gevent.ssl

        http_tls = {"ssl": True, "ssl_options": {"ca_certs": ca}, "ssl_context_factory": gevent.ssl.create_default_context}
        grpc_tls = {"ssl": True, "root_certificates": ca}
        headers = {"authorization": f"Bearer {token}"}

    def auth():
        # A dict of its own per call: tritonclient.http adds its binary header lengths to the one given.
        return None if headers is None else dict(headers)

    # REST, as tritonclient.http speaks it.
    http = httpclient.InferenceServerClient(url=http_addr, **http_tls)
    check(http.is_server_live(), "HTTP live")
    check(http.is_server_ready(), "HTTP ready")
    check(http.is_model_ready(model, headers=auth()), "HTTP model ready")
    metadata = http.get_model_metadata(model, headers=auth())
    check(metadata["name"] == model, f"HTTP metadata: {metadata}")
    output_name = metadata["outputs"][0]["name"]
    for binary in (False, True):
        for rows in (rows_one, rows_many):
            tensor = httpclient.InferInput("inputs", list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows, binary_data=binary)
            wanted = httpclient.InferRequestedOutput(output_name, binary_data=binary)
            result = http.infer(model, [tensor], outputs=[wanted], headers=auth())
            out = result.as_numpy(output_name)
            check(out is not None, f"HTTP binary={binary}: no output `{output_name}`")
            check(out.shape == (rows.shape[0],), f"HTTP binary={binary}: shape {out.shape}")
            check(int(out[0]) == first_class, f"HTTP binary={binary}: class {out[0]}")

    if headers is not None:
        refused = None
        try:
            http.infer(model, [tensor])
        except Exception as error:  # InferenceServerException
            refused = error
        check(refused is not None and "401" in str(refused.status()), f"HTTP without a token: {refused!r}")

    # gRPC, as tritonclient.grpc speaks it.
    grpc = grpcclient.InferenceServerClient(url=grpc_addr, **grpc_tls)
    check(grpc.is_server_live(), "gRPC live")
    check(grpc.is_server_ready(), "gRPC ready")
    check(grpc.is_model_ready(model, headers=auth()), "gRPC model ready")
    metadata = grpc.get_model_metadata(model, headers=auth())
    check(metadata.name == model, f"gRPC metadata: {metadata}")
    check(metadata.outputs[0].name == output_name, f"gRPC metadata outputs: {metadata.outputs}")
    for rows in (rows_one, rows_many):
        tensor = grpcclient.InferInput("inputs", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        result = grpc.infer(
            model, [tensor], outputs=[grpcclient.InferRequestedOutput(output_name)], request_id="r-9", headers=auth()
        )
        out = result.as_numpy(output_name)
        check(out is not None and out.shape == (rows.shape[0],), f"gRPC shape: {None if out is None else out.shape}")
        check(int(out[0]) == first_class, f"gRPC class {out[0]}")
        check(result.get_response().id == "r-9", "gRPC id")
    failure = None
    try:
        grpc.infer("no-such-model", [tensor], headers=auth())
    except Exception as error:  # tritonclient raises InferenceServerException
        failure = error
    status = failure.status() if failure is not None and hasattr(failure, "status") else None
    check(status is not None and "NOT_FOUND" in str(status), f"gRPC unknown model: {failure!r}")
    if headers is not None:
        refused = None
        try:
            grpc.infer(model, [tensor])
        except Exception as error:
            refused = error
        status = refused.status() if refused is not None and hasattr(refused, "status") else None
        check(status is not None and "UNAUTHENTICATED" in str(status), f"gRPC without a token: {refused!r}")

    # ModelStreamInfer, as tritonclient's decoupled streams call it: each request's answer comes
    # back on the stream, in order, and a request that fails is an error in its place.
    import queue

    answers = queue.Queue()
    grpc.start_stream(callback=lambda result, error: answers.put((result, error)), headers=auth())
    streamed = (rows_one, rows_many, rows_one)
    for index, rows in enumerate(streamed):
        tensor = grpcclient.InferInput("inputs", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        wanted = [grpcclient.InferRequestedOutput(output_name)]
        name = "no-such-model" if index == 2 else model
        grpc.async_stream_infer(name, [tensor], request_id=f"s-{index}", outputs=wanted)
    grpc.stop_stream()
    for index, rows in enumerate(streamed):
        result, error = answers.get(timeout=30)
        if index == 2:
            check(result is None and error is not None and "no-such-model" in str(error), f"stream error: {error!r}")
            continue
        check(error is None, f"stream answer {index}: {error!r}")
        out = result.as_numpy(output_name)
        check(out is not None and out.shape == (rows.shape[0],), f"stream shape: {None if out is None else out.shape}")
        check(int(out[0]) == first_class, f"stream class {out[0]}")
        check(result.get_response().id == f"s-{index}", f"stream id {result.get_response().id}")
    check(answers.empty(), "one answer per request")


# KServe's clients (kserve >= 0.12), REST (v2) and gRPC.
async def kserve_clients():
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

    base = f"http://{http_addr}"
    rest = InferenceRESTClient(config=RESTConfig(protocol="v2"))
    check(await rest.is_server_live(base), "KServe REST live")
    check(await rest.is_model_ready(base, model), "KServe REST model ready")
    for rows in (rows_one, rows_many):
        tensor = InferInput(name="inputs", shape=list(rows.shape), datatype="FP32")
        tensor.set_data_from_numpy(rows, binary_data=False)
        request = InferRequest(model_name=model, infer_inputs=[tensor], request_id="k-1")
        response = await rest.infer(base, request, model_name=model)
        out = response.outputs[0].as_numpy()
        check(response.id == "k-1", f"KServe REST id {response.id}")
        check(out.shape == (rows.shape[0],) and int(out[0]) == first_class, f"KServe REST {out}")
    await rest.close()
    grpc_client = InferenceGRPCClient(url=grpc_addr)
    for rows in (rows_one, rows_many):
        tensor = InferInput(name="inputs", shape=list(rows.shape), datatype="FP32")
        tensor.set_data_from_numpy(rows)
        response = await grpc_client.infer(InferRequest(model_name=model, infer_inputs=[tensor], request_id="k-2"))
        out = response.outputs[0].as_numpy()
        check(response.id == "k-2", f"KServe gRPC id {response.id}")
        check(out.shape == (rows.shape[0],) and int(out[0]) == first_class, f"KServe gRPC {out}")


if family == "triton":
    triton_clients()
elif family == "triton-tls":
    triton_clients(ca=sys.argv[7], token=sys.argv[8])
else:
    asyncio.run(kserve_clients())
print(f"ok {checks} checks")

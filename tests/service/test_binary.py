"""Triton's binary tensor data extension and HTTP compression on V2 inference, byte by byte: what
tritonclient sends, and every way such a body can be wrong (each a 4xx naming the input)."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest

from service.server import create_app
from tests.service.support import (
    MODEL_NAMES,
    TestClient,
    config,
    feeds,
    newest,
    ort_predict,
    sample_rows,
    settings,
    v2_body,
    v2_outputs,
)

MAX_BODY = 64 * 1024


def binary_request(name: str, rows: np.ndarray, **output_parameters) -> tuple[bytes, int]:
    """A V2 request with the rows (in the newest version's form) as binary data: the body and
    its JSON header's length."""
    specs = {spec.name: spec for spec in config(name).inputs}
    tensors = feeds(name, None, rows)
    header = {"inputs": [
        {"name": input_name, "shape": list(tensor.shape), "datatype": specs[input_name].datatype,
         "parameters": {"binary_data_size": tensor.nbytes}}
        for input_name, tensor in tensors.items()
    ]}  # fmt: skip
    if output_parameters:
        header["outputs"] = [{"name": config(name).outputs[0].name,
                              "parameters": output_parameters}]  # fmt: skip
    text = json.dumps(header).encode()
    return text + b"".join(tensor.tobytes() for tensor in tensors.values()), len(text)


def post(client, name, body: bytes, header_length: int | str | None, **headers):
    if header_length is not None:
        headers["inference-header-content-length"] = str(header_length)
    return client.post(f"/v2/models/{name}/infer", content=body, headers=headers)


def binary_outputs(answer) -> tuple[dict, np.ndarray]:
    length = int(answer.headers["inference-header-content-length"])
    header = json.loads(answer.content[:length])
    (output,) = header["outputs"]
    data = np.frombuffer(answer.content[length:], np.float32).reshape(output["shape"])
    assert output["parameters"]["binary_data_size"] == len(answer.content) - length
    return header, data


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_binary_in_binary_out(client, name):
    rows = sample_rows(name)
    body, length = binary_request(name, rows, binary_data=True)
    answer = post(client, name, body, length)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    header, data = binary_outputs(answer)
    assert "data" not in header["outputs"][0]
    np.testing.assert_allclose(data, ort_predict(name, newest(name), rows), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_binary_and_json_give_the_same_answer(client, name):
    rows = sample_rows(name)
    as_json = v2_outputs(client.post(f"/v2/models/{name}/infer", json=v2_body(name, rows)).json())
    body, length = binary_request(name, rows)
    answer = post(client, name, body, length)
    assert answer.headers["content-type"] == "application/json"  # JSON out unless asked
    np.testing.assert_array_equal(v2_outputs(answer.json()), as_json)
    all_binary = json.loads(body[:length]) | {"parameters": {"binary_data_output": True}}
    header = json.dumps(all_binary).encode()
    _, data = binary_outputs(post(client, name, header + body[length:], len(header)))
    np.testing.assert_array_equal(data, as_json)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_answers_when_asked(client, encoding):
    rows = sample_rows("reuters")
    answer = client.post("/v2/models/reuters/infer", json=v2_body("reuters", rows),
                         headers={"accept-encoding": encoding})  # fmt: skip
    assert answer.headers["content-encoding"] == encoding
    # httpx undoes the encoding it was told of, as any HTTP client does
    np.testing.assert_allclose(v2_outputs(answer.json()),
                               ort_predict("reuters", newest("reuters"), rows), atol=1e-6)  # fmt: skip
    plain = client.post("/v2/models/reuters/infer", json=v2_body("reuters", rows),
                        headers={"accept-encoding": "identity"})  # fmt: skip
    assert "content-encoding" not in plain.headers


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress),
                                                     ("deflate", zlib.compress)])  # fmt: skip
def test_compressed_requests(client, encoding, compress):
    rows = sample_rows("boston")
    body = compress(json.dumps(v2_body("boston", rows)).encode())
    answer = client.post("/v2/models/boston/infer", content=body,
                         headers={"content-encoding": encoding})  # fmt: skip
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(v2_outputs(answer.json()),
                               ort_predict("boston", newest("boston"), rows), atol=1e-5)  # fmt: skip


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    with TestClient(create_app(settings(max_body_bytes=MAX_BODY))) as test_client:
        yield test_client


def boston_binary(rows: int = 3) -> tuple[bytes, int]:
    return binary_request("boston", sample_rows("boston")[:1].repeat(rows, axis=0))


def header_with(body: bytes, length: int, **changes) -> tuple[bytes, int]:
    header = json.loads(body[:length])
    header["inputs"][0].update(changes)
    text = json.dumps(header).encode()
    return text + body[length:], len(text)


def test_a_zip_bomb_is_413_not_an_out_of_memory(small):
    bomb = gzip.compress(b"{" + b" " * (100 * MAX_BODY) + b"}")
    assert len(bomb) < MAX_BODY
    answer = small.post("/v2/models/boston/infer", content=bomb,
                        headers={"content-encoding": "gzip"})  # fmt: skip
    assert answer.status_code == 413, answer.text
    assert "decompressed" in answer.json()["error"]


@pytest.mark.parametrize(
    ("case", "status", "field"),
    [
        ("header length past the body", 400, "Inference-Header-Content-Length"),
        ("header length not a number", 400, "Inference-Header-Content-Length"),
        ("size disagrees with the shape", 400, "inputs[0]"),
        ("size disagrees with the datatype", 400, "inputs[0].datatype"),
        ("truncated data", 400, "inputs[0]"),
        ("bytes after the data", 400, "body"),
        ("not gzip", 400, "body"),
        ("unknown content encoding", 415, "Content-Encoding"),
    ],
)
def test_malformed_binary_bodies(small, case, status, field):
    body, length = boston_binary()
    headers = {}
    if case == "header length past the body":
        length = len(body) + 1
    elif case == "header length not a number":
        length = "12a"
    elif case == "size disagrees with the shape":
        body, length = header_with(body, length, shape=[2, 13])
    elif case == "size disagrees with the datatype":
        body, length = header_with(body, length, datatype="FP64")
    elif case == "truncated data":
        body = body[:-4]
    elif case == "bytes after the data":
        body += bytes(4)
    elif case == "not gzip":
        headers["content-encoding"] = "gzip"
    elif case == "unknown content encoding":
        headers["content-encoding"] = "br"
    answer = post(small, "boston", body, length, **headers)
    assert answer.status_code == status, answer.text
    assert field in [d["field"] for d in answer.json()["details"]], answer.json()

"""The plain baseline of the benchmark: the FastAPI + pydantic + onnxruntime app people write first.

    python -m loadtest.baselines.plain_fastapi --port 8001 --models boston imdb

A route per model and endpoint on the service's paths, taking the same bodies, so that the same
wrk scripts drive both: typed (`/api/boston`, `/api/imdb`: houses, raw reviews encoded with the
model's own encoder, as its newest version takes them: dense rows, or ids (and weights) padded to
the longest review) and V2 JSON (`/v2/models/<name>[/versions/<v>]/infer`: each input tensor
of the body fed by its name). Each body is a pydantic model; each request runs the model's
onnxruntime session (default options) on its own rows in a plain `def` endpoint (FastAPI's
thread pool). No batching, no metrics, no limits.
"""

import numpy as np
import onnxruntime
from fastapi import FastAPI
from pydantic import BaseModel, create_model

from contract.config import NUMPY_OF_DATATYPE
from loadtest.baselines.server import new_app, serve_models
from loadtest.harness.payloads import MODELS, model_config, tensors, text_rows


class Reviews(BaseModel):
    reviews: list[str]


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[Tensor]


def session(name: str) -> onnxruntime.InferenceSession:
    folder = MODELS / name / str(model_config(name)["version"])
    return onnxruntime.InferenceSession(folder / "model.onnx", providers=["CPUExecutionProvider"])


def add_v2(app: FastAPI, name: str, model: onnxruntime.InferenceSession) -> None:
    version = str(model_config(name)["version"])

    def infer(request: InferRequest) -> dict:
        feeds = {
            tensor.name: np.asarray(tensor.data, NUMPY_OF_DATATYPE[tensor.datatype]).reshape(
                tensor.shape
            )
            for tensor in request.inputs
        }
        outputs = model.run(None, feeds)
        return {
            "model_name": name,
            "model_version": version,
            "outputs": [
                {"name": meta.name, "shape": list(value.shape), "datatype": "FP32",
                 "data": value.ravel().tolist()}
                for meta, value in zip(model.get_outputs(), outputs, strict=True)
            ],
        }  # fmt: skip

    for path in (f"/v2/models/{name}/versions/{version}/infer", f"/v2/models/{name}/infer"):
        app.add_api_route(path, infer, methods=["POST"])


def add_boston(app: FastAPI, model: onnxruntime.InferenceSession) -> None:
    config = model_config("boston")
    order = [f["name"] for f in config["encoding"]["features"]]
    house = create_model("House", **{feature: (float, ...) for feature in order})
    houses = create_model("Houses", houses=(list[house], ...))
    input_name, unit = model.get_inputs()[0].name, config["target"]["unit"]

    def boston(request: houses) -> dict:  # type: ignore[valid-type]
        rows = np.array([[getattr(h, f) for f in order] for h in request.houses], np.float32)
        prices = model.run(None, {input_name: rows})[0][:, 0]
        return {"model": "boston", "version": config["version"],
                "predictions": [{"price": float(p), "unit": unit} for p in prices]}  # fmt: skip

    app.add_api_route("/api/boston", boston, methods=["POST"])


def add_imdb(app: FastAPI, model: onnxruntime.InferenceSession) -> None:
    config = model_config("imdb")
    negative, positive = config["labels"]

    def imdb(request: Reviews) -> dict:
        feeds = tensors("imdb", text_rows("imdb", request.reviews))
        predictions = []
        for p in model.run(None, feeds)[0][:, 0].tolist():
            label = positive if p > 0.5 else negative
            scores = {negative: 1 - p, positive: p}
            predictions.append({"label": label, "probability": scores[label], "scores": scores})
        return {"model": "imdb", "version": config["version"], "predictions": predictions}

    app.add_api_route("/api/imdb", imdb, methods=["POST"])


def create_app(names: list[str]) -> FastAPI:
    app = new_app("plain FastAPI")
    typed = {"boston": add_boston, "imdb": add_imdb}
    for name in names:
        model = session(name)
        add_v2(app, name, model)
        if name in typed:
            typed[name](app, model)
    return app


if __name__ == "__main__":
    serve_models(__doc__.splitlines()[0], create_app)

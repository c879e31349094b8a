"""The naive baseline of the benchmark: the Keras model server people write first.

    python -m loadtest.baselines.naive_keras --port 8001 --models boston imdb

FastAPI with a plain `def` endpoint (run in FastAPI's thread pool) on the service's V2 infer path,
taking the same V2 bodies: each model's newest SavedModel wrapped in a Keras model of its serving
signature's inputs (a dense text version's rows; a sparse one's `ids` and `weights`), and
`model.predict` on every request's tensors, by name. No batching, no ONNX, TensorFlow in the
request path. It answers in the V2 response shape. The benchmark runs it in a process of its own
(TensorFlow).
"""

from __future__ import annotations

import keras
import numpy as np
from fastapi import FastAPI, HTTPException

from contract.config import NUMPY_OF_DATATYPE
from loadtest.baselines.server import new_app, serve_models
from loadtest.harness.payloads import MODELS, model_config


class SignatureLayer(keras.layers.TFSMLayer):
    """A SavedModel's signature as a layer of its inputs by name: a signature takes keyword
    arguments only (`TFSMLayer` passes its one input by position, which serves one input alone)."""

    def call(self, inputs: dict):
        return self.call_endpoint_fn(**inputs)


def load(name: str) -> keras.Model:
    """The SavedModel's serving signature as a Keras 3 model (Keras 3 cannot load a SavedModel
    as a model; `TFSMLayer` wraps one as a layer), its inputs named as the config names them."""
    config = model_config(name)
    folder = MODELS / name / str(config["version"]) / "saved_model"
    inputs = {
        spec["name"]: keras.Input(
            shape=tuple(None if d < 0 else d for d in spec["shape"][1:]),
            dtype=NUMPY_OF_DATATYPE[spec["datatype"]].name,
            name=spec["name"],
        )
        for spec in config["inputs"]
    }
    layer = SignatureLayer(str(folder), call_endpoint="serving_default")
    return keras.Model(inputs, layer(inputs))


def create_app(names: list[str]) -> FastAPI:
    models = {(name, str(model_config(name)["version"])): load(name) for name in names}
    app = new_app("naive Keras")

    @app.post("/v2/models/{name}/versions/{version}/infer")
    def infer(name: str, version: str, request: dict):
        if (name, version) not in models:
            raise HTTPException(404, f"model {name} version {version} is not loaded")
        batch = {
            tensor["name"]: np.array(tensor["data"], NUMPY_OF_DATATYPE[tensor["datatype"]]).reshape(
                tensor["shape"]
            )
            for tensor in request["inputs"]
        }
        outputs = models[name, version].predict(batch, verbose=0)
        return {
            "model_name": name,
            "model_version": version,
            "outputs": [
                {"name": key, "shape": list(value.shape), "datatype": "FP32",
                 "data": value.ravel().tolist()}
                for key, value in outputs.items()
            ],
        }  # fmt: skip

    return app


if __name__ == "__main__":
    serve_models(__doc__.splitlines()[0], create_app)

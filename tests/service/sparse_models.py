"""Sparse text models made from the committed dense ones: the same weights, the first layer a
gather of each row's n-gram rows instead of a MatMul over the whole vocabulary. Their answers must
be the dense versions' to float rounding, on every way in: what the service's sparse path is
tested against."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from contract.config import CONFIG_FILE, ONNX_FILE, read_config, text_inputs

DENSE_INPUT = "encoded_text"


def sparse_graph(dense: onnx.ModelProto, weighted: bool) -> onnx.ModelProto:
    """`dense` with every MatMul of its input row by a weight matrix W [dim, units] written as a
    Gather of W's rows (plus a zero row, the padding id's) by `ids`, then their sum (binary) or
    `weights` [n, 1, k] @ rows [n, k, units]."""
    graph = dense.graph
    initializers = {t.name: t for t in graph.initializer}
    nodes, axis = [], numpy_helper.from_array(np.array([1], np.int64), "sparse_axis")
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[0] != DENSE_INPUT:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(initializers.pop(node.input[1]))
        table = f"{node.input[1]}_table"
        padded = np.concatenate([w, np.zeros((1, w.shape[1]), w.dtype)])
        initializers[table] = numpy_helper.from_array(padded, table)
        rows, out = f"{table}_rows", node.output[0]
        nodes.append(helper.make_node("Gather", [table, "ids"], [rows]))
        if not weighted:
            nodes.append(helper.make_node("ReduceSum", [rows, axis.name], [out], keepdims=0))
            continue
        nodes += [
            helper.make_node("Unsqueeze", ["weights", axis.name], [f"{table}_weights"]),
            helper.make_node("MatMul", [f"{table}_weights", rows], [f"{table}_summed"]),
            helper.make_node("Squeeze", [f"{table}_summed", axis.name], [out]),
        ]
    inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", "k"])]
    if weighted:
        inputs.append(helper.make_tensor_value_info("weights", TensorProto.FLOAT, ["n", "k"]))
    made = helper.make_graph(
        nodes, "sparse", inputs, list(graph.output), [*initializers.values(), axis]
    )
    model = helper.make_model(made, opset_imports=list(dense.opset_import))
    model.ir_version = dense.ir_version
    onnx.checker.check_model(model)
    return model


def add_sparse_version(root: Path, name: str, version: int, new_version: int) -> Path:
    """Version `new_version` of model `name` in the repository `root`: its `version` there in the
    sparse form (its vocabulary, its weights)."""
    source_folder = Path(root) / name / str(version)
    dest = Path(root) / name / str(new_version)
    dest.mkdir(parents=True)
    config = read_config(source_folder)
    encoding = config.encoding.model_copy(update={"form": "sparse"})
    shutil.copy2(source_folder / encoding.vocabulary_file, dest)
    graph = sparse_graph(
        onnx.load(source_folder / ONNX_FILE), weighted=encoding.weighting != "binary"
    )
    onnx.save(graph, dest / ONNX_FILE)
    config = config.model_validate(
        {
            **config.model_dump(),
            "version": new_version,
            "encoding": encoding.model_dump(),
            "inputs": [s.model_dump() for s in text_inputs(encoding)],
        }
    )
    (dest / CONFIG_FILE).write_text(config.model_dump_json(indent=2), "utf-8")
    return dest

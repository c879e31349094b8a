"""The IMDB network with its first layer as a gather-and-sum of a review's n-gram rows instead of a
dense MatMul over the whole vocabulary: onnxruntime's time per row for each way of writing it in
ONNX, at vocabularies far wider than today's, beside today's dense graph, side by side.

    python -m loadtest sparse_graphs [--batches 1 64] [--vocabularies 50000 500000 2000000]
                                     [--duration 2] [--rounds 2] [--out reports/sparse_graphs]

The newest IMDB version of the dense form's weights (its first layer W [V, 16], then the rest of its
graph as it is; a sparse version has its first layer written already); wider vocabularies append random rows to W that no review touches, so that every graph
answers the same. The rows are the benchmark's sample reviews, encoded by that version's encoder
(`contract.text`): each review's n-gram ids, padded per batch with an id whose row of W is
zeros (and, where the form takes them, their weights, padded with 0). One onnxruntime thread, the
service's session options; each graph's answers against the dense graph's (max |difference|).
The measurement behind issue 21's sparse export: which form to export, and whether its cost
depends on the vocabulary's size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from contract.config import ONNX_FILE, list_versions, read_config
from contract.text import TextEncoder
from loadtest.baselines.compute_limit import time_calls
from loadtest.harness.measure import median_round
from loadtest.harness.payloads import MODELS, SAMPLES
from loadtest.harness.report import machine_lines, provenance, table
from service.runtime import OnnxRuntime
from service.settings import Settings

HIDDEN = "hidden"  # what the first layer's MatMul gives the rest of the graph
# The first layer written each way: (nodes, extra inputs) given W's initializer name.
FORMS = ("dense", "gather-sum", "gather-mul-sum", "gather-matmul", "gather-einsum")


def first_layer(form: str, weights: str) -> tuple[list, list]:
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", "k"])
    values = helper.make_tensor_value_info("values", TensorProto.FLOAT, ["n", "k"])
    gather = helper.make_node("Gather", [weights, "ids"], ["rows"])
    axis = helper.make_node("Constant", [], ["axis"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1]))  # fmt: skip
    if form == "dense":
        x = helper.make_tensor_value_info("encoded_text", TensorProto.FLOAT, ["n", "V"])
        return [helper.make_node("MatMul", ["encoded_text", weights], [HIDDEN])], [x]
    if form == "gather-sum":  # binary weighting: every entry of a review counts once
        return [gather, axis, helper.make_node("ReduceSum", ["rows", "axis"], [HIDDEN], keepdims=0)], [ids]  # fmt: skip
    if form == "gather-mul-sum":
        return [
            gather, axis,
            helper.make_node("Unsqueeze", ["values", "minus_one"], ["columns"]),
            helper.make_node("Mul", ["rows", "columns"], ["weighted"]),
            helper.make_node("ReduceSum", ["weighted", "axis"], [HIDDEN], keepdims=0),
        ], [ids, values]  # fmt: skip
    if form == "gather-matmul":
        return [
            gather, axis,
            helper.make_node("Unsqueeze", ["values", "axis"], ["row_vector"]),
            helper.make_node("MatMul", ["row_vector", "rows"], ["summed"]),
            helper.make_node("Squeeze", ["summed", "axis"], [HIDDEN]),
        ], [ids, values]  # fmt: skip
    return [gather, helper.make_node("Einsum", ["values", "rows"], [HIDDEN], equation="nk,nkd->nd")], [ids, values]  # fmt: skip


def graph_of(dense: onnx.ModelProto, form: str, vocabulary: int) -> bytes:
    """The committed graph with its first MatMul written as `form`, W widened to `vocabulary`
    rows plus the padding row (zeros)."""
    graph = dense.graph
    first, *rest = graph.node
    w = numpy_helper.to_array(next(t for t in graph.initializer if t.name == first.input[1]))
    rng = np.random.default_rng(0)
    extra = rng.standard_normal((vocabulary - w.shape[0], w.shape[1])).astype(np.float32) * 0.01
    wide = np.concatenate([w, extra, np.zeros((1, w.shape[1]), np.float32)])
    if form == "dense":
        wide = wide[:-1]
    nodes, inputs = first_layer(form, "W")
    for node in rest:  # the rest of the graph reads the first layer's output by our name
        node.input[:] = [HIDDEN if name == first.output[0] else name for name in node.input]
    minus_one = helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1])
    initializers = [numpy_helper.from_array(wide, "W"), minus_one]
    initializers += [t for t in graph.initializer if t.name != first.input[1]]
    made = helper.make_graph([*nodes, *rest], form, inputs, list(graph.output), initializers)
    model = helper.make_model(made, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = dense.ir_version
    return model.SerializeToString()


def newest_dense(name: str) -> Path:
    """The folder of the model's newest version of the dense form (`TextEncoding.form`)."""
    for version in reversed(list_versions(MODELS)[name]):
        folder = MODELS / name / str(version)
        if read_config(folder).encoding.form == "dense":
            return folder
    raise SystemExit(f"{MODELS} has no version of {name} of the dense form")


def review_rows(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each sample review's n-gram ids and weights (the version's encoder)."""
    config = read_config(folder)
    encoder = TextEncoder.load(config.encoding, folder)
    texts = [sample["text"] for sample in SAMPLES["imdb"]]
    rows, columns, values = encoder.coordinates(encoder.word_ids_batch(texts))
    ends = np.searchsorted(rows, np.arange(1, len(texts) + 1))
    return np.split(columns, ends[:-1]), np.split(values, ends[:-1])


def feeds(form: str, ids, weights, size: int, width: int, pad: int) -> dict[str, np.ndarray]:
    """A batch of `size` reviews (the samples in turn) as `form` takes it."""
    chosen = [i % len(ids) for i in range(size)]
    if form == "dense":
        x = np.zeros((size, width), np.float32)
        for row, i in enumerate(chosen):
            x[row, ids[i]] = weights[i]
        return {"encoded_text": x}
    k = max(len(ids[i]) for i in chosen)
    padded = np.full((size, k), pad, np.int64)
    values = np.zeros((size, k), np.float32)
    for row, i in enumerate(chosen):
        padded[row, : len(ids[i])], values[row, : len(ids[i])] = ids[i], weights[i]
    return {"ids": padded} if form == "gather-sum" else {"ids": padded, "values": values}


def measure(args: argparse.Namespace) -> list[dict]:
    folder = newest_dense("imdb")
    ids, weights = review_rows(folder)
    settings, results = Settings(_env_file=None), []
    reference = {}
    for vocabulary in args.vocabularies:
        for form in FORMS:
            if form == "dense" and vocabulary > args.dense_up_to:
                continue  # a dense row as wide as millions of columns: not a serving option
            path = args.out.parent / f".sparse-{form}-{vocabulary}.onnx"
            path.write_bytes(graph_of(onnx.load(folder / ONNX_FILE), form, vocabulary))
            session = OnnxRuntime(path, settings.providers, 1).session
            path.unlink()
            for size in args.batches:
                batch = feeds(form, ids, weights, size, vocabulary, vocabulary)
                out = session.run(None, batch)[0]
                reference.setdefault(size, out)
                runs = [time_calls(lambda i, b=batch, s=session: s.run(None, b), 1, args.duration)
                        for _ in range(args.rounds)]  # fmt: skip
                kept = median_round(runs)
                result = {"form": form, "vocabulary": vocabulary, "batch": size,
                          "us_per_row": 1e6 / kept["rps"] / size,
                          "max_abs_diff": float(np.abs(out - reference[size]).max())}  # fmt: skip
                results.append(result)
                print(json.dumps(result), flush=True)
    return results


def report(results: list[dict], info: dict, args: argparse.Namespace) -> list[str]:
    base = {r["batch"]: r["us_per_row"] for r in results if r["form"] == "dense"
            and r["vocabulary"] == min(args.vocabularies)}  # fmt: skip
    rows = [[r["form"], f"{r['vocabulary']:,}", r["batch"], f"{r['us_per_row']:.1f}",
             f"{base[r['batch']] / r['us_per_row']:.2f}", f"{r['max_abs_diff']:.1e}"]
            for r in results]  # fmt: skip
    return [
        "# The IMDB network's first layer: dense MatMul or gather-and-sum",
        "",
        f"`{info['command']}`, {info['date']}, code: {info['code']}. One onnxruntime thread; "
        f"the median of {args.rounds} runs of {args.duration:g} s per point. µs per review; "
        "speed-up over the dense graph of today's vocabulary at the same batch size; max "
        "|difference| from its answers.",
        "",
        *table(["form", "vocabulary", "batch", "µs per row", "× dense", "max |diff|"], rows),
        "",
        *machine_lines(info["machine"]),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--vocabularies", type=int, nargs="+", default=[50_000, 500_000, 2_000_000])
    parser.add_argument("--dense-up-to", type=int, default=100_000, help="widest dense graph")
    parser.add_argument("--duration", type=float, default=2, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("reports/sparse_graphs"))
    args = parser.parse_args()
    info = provenance("sparse_graphs", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = measure(args)
    args.out.with_suffix(".json").write_text(json.dumps({**info, "results": results}, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(report(results, info, args)), "utf-8")
    print(f"wrote {args.out}.md")


if __name__ == "__main__":
    main()

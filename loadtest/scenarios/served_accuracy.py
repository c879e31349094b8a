"""Each text model version's test accuracy as clients get it: every IMDB test review sent as raw
text and every Reuters test newswire as word ids to the typed endpoints of a running service,
beside the figure the trainer recorded in the version's config.

    python -m loadtest served_accuracy --data-dir ../shared/data [--versions 2 3]
                                       [--chunk 250] [--repository models]
                                       [--out reports/served_accuracy]

One `python -m service` on the repository; `POST /api/imdb?version=N` with the reviews of
`aclImdb.tar.gz`'s test split (`trainer.data.read_reviews`: the files the trainer encodes), 250 a
request; `POST /api/reuters?version=N` with `reuters.npz`'s test word ids (the service caps them
at the version's vocabulary, as the trainer does) and `top_k` 46. Accuracy, mean top probability
and expected calibration error (15 bins) of the served answers; the trainer's accuracy from
`config.json` (`metrics.test`). They must be equal: what the service encodes is what the trainer
evaluated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import numpy as np

from contract.config import read_config
from loadtest.harness.report import machine_lines, provenance, table
from loadtest.harness.servers import REPO, running, start_service
from trainer import data

ECE_BINS = 15


def calibration_error(top: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: |accuracy − mean top probability| per equal-width bin of the
    top probability, weighted by the bin's share of the rows."""
    which = np.minimum((top * bins).astype(int), bins - 1)
    return float(
        sum(
            abs(correct[which == b].mean() - top[which == b].mean()) * np.mean(which == b)
            for b in range(bins)
            if (which == b).any()
        )
    )


def imdb_scores(url: str, version: int, reviews, chunk: int, labels) -> np.ndarray:
    """The served probability of each label, per review."""
    scores = []
    for start in range(0, len(reviews), chunk):
        texts = [text for text, _ in reviews[start : start + chunk]]
        answer = httpx.post(
            f"{url}/api/imdb?version={version}", json={"reviews": texts}, timeout=120
        )
        answer.raise_for_status()
        scores += [[p["scores"][label] for label in labels] for p in answer.json()["predictions"]]
    return np.array(scores)


def reuters_scores(url: str, version: int, sequences, chunk: int, labels) -> np.ndarray:
    scores = np.zeros((len(sequences), len(labels)))
    for start in range(0, len(sequences), chunk):
        body = {
            "word_ids": [s.tolist() for s in sequences[start : start + chunk]],
            "top_k": len(labels),
        }
        answer = httpx.post(f"{url}/api/reuters?version={version}", json=body, timeout=120)
        answer.raise_for_status()
        for row, prediction in enumerate(answer.json()["predictions"], start):
            for topic in prediction["topics"]:
                scores[row, labels.index(topic["topic"])] = topic["probability"]
    return scores


def measure(args: argparse.Namespace, url: str) -> list[dict]:
    reviews = data.read_reviews(args.data_dir / "aclImdb.tar.gz", ("test",))["test"]
    reuters = data.load_reuters(args.data_dir, test_only=True)
    tests = {
        "imdb": (np.array([label for _, label in reviews]), imdb_scores, reviews),
        "reuters": (np.asarray(reuters.y_test), reuters_scores, list(reuters.x_test)),
    }
    results = []
    for name, (truth, scores_of, items) in tests.items():
        for version in args.versions:
            config = read_config(args.repository / name / str(version))
            scores = scores_of(url, version, items, args.chunk, config.labels)
            top, predicted = scores.max(axis=1), scores.argmax(axis=1)
            correct = predicted == truth
            result = {
                "model": name, "version": version, "rows": len(truth),
                "form": config.encoding.form,
                "served_accuracy": float(correct.mean()),
                "trainer_accuracy": config.metrics.test["accuracy"] if config.metrics else None,
                "mean_top_probability": float(top.mean()),
                "ece": calibration_error(top, correct),
            }  # fmt: skip
            results.append(result)
            print(json.dumps(result), flush=True)
    return results


def report(results: list[dict], info: dict) -> list[str]:
    rows = [
        [r["model"], r["version"], r["form"], f"{r['rows']:,}", f"{r['served_accuracy']:.4f}",
         f"{r['trainer_accuracy']:.4f}" if r["trainer_accuracy"] is not None else "—",
         f"{r['mean_top_probability']:.3f}", f"{r['ece']:.4f}"]
        for r in results
    ]  # fmt: skip
    return [
        "# Test accuracy through the service's typed endpoints",
        "",
        f"`{info['command']}`, {info['date']}, code: {info['code']}. IMDB: every test review as "
        "raw text; Reuters: every test newswire as word ids. ECE: expected calibration error, "
        f"{ECE_BINS} equal-width bins of the top probability.",
        "",
        *table(
            [
                "model",
                "version",
                "form",
                "test rows",
                "served accuracy",
                "trainer's accuracy",
                "mean top probability",
                "ECE",
            ],
            rows,
        ),
        "",
        *machine_lines(info["machine"]),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--versions", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--chunk", type=int, default=250, help="texts per request")
    parser.add_argument("--repository", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, default=Path("reports/served_accuracy"))
    args = parser.parse_args()
    info = provenance("served_accuracy", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.parent / "served_accuracy.service.log"
    server = start_service(log, {"SERVICE_GRPC_PORT": "0"}, repository=args.repository)
    with running(server) as (_, url):
        results = measure(args, url)
    args.out.with_suffix(".json").write_text(json.dumps({**info, "results": results}, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(report(results, info)), "utf-8")
    print(f"wrote {args.out}.md")


if __name__ == "__main__":
    main()

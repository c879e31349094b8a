"""Locust scenarios for the service: one user class per model and protocol, real test-split inputs.

    python -m loadtest locust --start-service                      # everything: the mixed scenario
    locust -f loadtest/locustfile.py --host http://HOST:8000 TypedImdb V2Boston   # some classes

Each class sends one sample per request, picked at random from `loadtest/samples.json` (written by
`loadtest/scenarios/samples.py`), and checks the answer: status 200, the output's shape, labels from
`contract.catalog` (Reuters topics sorted by probability), probabilities in [0, 1], Boston prices
finite and in (0, 100). A malformed answer counts as a failure. Requests are named
"<protocol> <model>[ <input>]" so the stats table groups them.

The mixed scenario is all classes together (locust's default when no class names are given): their
`weight`s (13 in all) make it mostly typed traffic (8 of 13 users), as from the demo page and
people's scripts, and the rest V2 and V1 from other services; with a multiple of 13 users every
class runs (fewer users leave the light classes out). Pass class names to run some of them only.

The bodies come from `loadtest/harness/payloads.py`, shared with the benchmark (`loadtest/scenarios/benchmark.py`)
so both send the same payloads: the V2 and V1 text classes encode texts as the service does, with
the model's own encoder and vocabulary read from the model repository ($LOADTEST_MODELS, default
`models/` of this checkout), and name that version in the URL so the encoding matches the model.
Imports no TensorFlow and nothing from `trainer`: only `loadtest.harness.payloads`, `contract.catalog`,
NumPy and the standard library.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

from locust import FastHttpUser, between, events, task

from contract.catalog import IMDB_LABELS, REUTERS_LABELS
from loadtest.harness.payloads import (
    SAMPLES,
    TYPED_PATHS,
    boston_body,
    imdb_body,
    model_config,
    reuters_body,
    rows,
    v1_body,
    v1_path,
    v2_body,
    v2_path,
)

SUMMARY = os.environ.get("LOADTEST_SUMMARY")  # where to write the final stats, as JSON
MAX_PRICE = 100.0  # $1000s; the data set's prices are 5..50
JSON = {"Content-Type": "application/json"}


ENVIRONMENT = []  # locust's Environment, kept by `keep_environment`


@events.init.add_listener
def prepare(environment, **_kwargs) -> None:
    """Keeps the environment and builds the selected tensor classes' rows before the clock starts
    (encoding 50 reviews takes a while; done by the first user it would stall all the others)."""
    ENVIRONMENT.append(environment)
    for user_class in environment.user_classes or []:
        if issubclass(user_class, TensorUser):
            rows(user_class.model)


@events.quit.add_listener
def write_summary(**_kwargs) -> None:
    """The final stats per request name, exact (locust's CSV files are a snapshot up to 1 s old)."""
    if not SUMMARY or not ENVIRONMENT:
        return
    environment = ENVIRONMENT[-1]
    entries = [*environment.stats.entries.values(), environment.stats.total]
    summary = [
        {
            "name": "Aggregated" if e is environment.stats.total else e.name,
            "requests": e.num_requests,
            "failures": e.num_failures,
            "rps": round(e.total_rps, 2),
            "p50_ms": e.get_response_time_percentile(0.5),
            "p95_ms": e.get_response_time_percentile(0.95),
            "max_ms": e.max_response_time,
        }
        for e in entries
    ]
    Path(SUMMARY).write_text(json.dumps(summary, indent=1) + "\n", "utf-8")


class WrongAnswerError(Exception):
    """The service answered 200 with something that is not a right-shaped answer."""


def check_probability(p) -> None:
    if not (isinstance(p, int | float) and 0.0 <= p <= 1.0):
        raise WrongAnswerError(f"probability {p!r} is not in [0, 1]")


def check_price(p) -> None:
    if not (isinstance(p, int | float) and math.isfinite(p) and 0.0 < p < MAX_PRICE):
        raise WrongAnswerError(f"price {p!r} is not in (0, {MAX_PRICE})")


def check_topics(topics: list, top_k: int) -> None:
    if len(topics) != top_k:
        raise WrongAnswerError(f"{len(topics)} topics, asked for {top_k}")
    names = [t["topic"] for t in topics]
    if not set(names) <= set(REUTERS_LABELS) or len(set(names)) != len(names):
        raise WrongAnswerError(f"topics {names} are not distinct Reuters topics")
    probabilities = [t["probability"] for t in topics]
    for p in probabilities:
        check_probability(p)
    if probabilities != sorted(probabilities, reverse=True):
        raise WrongAnswerError(f"topics are not sorted by probability: {probabilities}")


def check_output_rows(name: str, rows: list[list[float]]) -> None:
    """The rows of a V2 or V1 answer for one input row, by the model's output."""
    if name == "boston":
        check_price(rows[0][0])
    elif name == "imdb":
        check_probability(rows[0][0])
    else:
        for p in rows[0]:
            check_probability(p)
        if abs(sum(rows[0]) - 1.0) > 1e-3:
            raise WrongAnswerError(f"Reuters probabilities sum to {sum(rows[0])}")


class ServiceUser(FastHttpUser):
    abstract = True
    wait_time = between(0.1, 0.5)

    def post(self, path: str, body: dict, name: str, check) -> None:
        """POSTs a JSON body; `check(answer)` raises WrongAnswerError (or a lookup error) when wrong."""
        with self.client.post(
            path, data=json.dumps(body), headers=JSON, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                check(response.json())
            except (WrongAnswerError, KeyError, IndexError, TypeError, ValueError) as error:
                response.failure(f"bad answer: {type(error).__name__}: {error}")
            else:
                response.success()


# Typed endpoints: most of the traffic.


class TypedImdb(ServiceUser):
    weight = 3

    @task
    def sentiment(self):
        sample = random.choice(SAMPLES["imdb"])

        def check(answer):
            (prediction,) = answer["predictions"]
            if prediction["label"] not in IMDB_LABELS:
                raise WrongAnswerError(f"label {prediction['label']!r}")
            check_probability(prediction["probability"])
            if set(prediction["scores"]) != set(IMDB_LABELS):
                raise WrongAnswerError(f"scores for {sorted(prediction['scores'])}")

        self.post(TYPED_PATHS["imdb"], imdb_body(sample["text"]), "typed imdb", check)


class TypedReutersText(ServiceUser):
    weight = 2
    field = "newswires"  # the sample's text; TypedReutersWordIds sends its word ids instead
    sample_key = "text"

    @task
    def topics(self):
        sample, top_k = random.choice(SAMPLES["reuters"]), random.randint(1, 5)

        def check(answer):
            (prediction,) = answer["predictions"]
            check_topics(prediction["topics"], top_k)

        body = reuters_body(sample[self.sample_key], self.field, top_k)
        self.post(TYPED_PATHS["reuters"], body, f"typed reuters {self.sample_key}", check)


class TypedReutersWordIds(TypedReutersText):
    weight = 1
    field = "word_ids"
    sample_key = "word_ids"


class TypedBoston(ServiceUser):
    weight = 2

    @task
    def price(self):
        sample = random.choice(SAMPLES["boston"])

        def check(answer):
            (prediction,) = answer["predictions"]
            check_price(prediction["price"])

        self.post(TYPED_PATHS["boston"], boston_body(sample["house"]), "typed boston", check)


# Open Inference Protocol (KServe V2) and TensorFlow Serving (V1): other services' traffic.


class TensorUser(ServiceUser):
    abstract = True
    model = ""

    def on_start(self):
        self.width = model_config(self.model)["outputs"][0]["shape"][-1]
        self.rows = rows(self.model)  # cached: built by the first user of the class


class V2User(TensorUser):
    abstract = True

    @task
    def infer(self):
        row = random.choice(self.rows)

        def check(answer):
            (output,) = answer["outputs"]
            if output["shape"] != [1, self.width] or len(output["data"]) != self.width:
                raise WrongAnswerError(
                    f"output shape {output['shape']}, expected [1, {self.width}]"
                )
            check_output_rows(self.model, [output["data"]])

        self.post(v2_path(self.model), v2_body(self.model, row), f"v2 {self.model}", check)


class V1User(TensorUser):
    abstract = True

    @task
    def predict(self):
        row = random.choice(self.rows)

        def check(answer):
            predictions = answer["predictions"]
            if len(predictions) != 1 or len(predictions[0]) != self.width:
                raise WrongAnswerError(f"predictions are not 1 row of {self.width}")
            check_output_rows(self.model, predictions)

        self.post(v1_path(self.model), v1_body(self.model, row), f"v1 {self.model}", check)


class V2Boston(V2User):
    weight = 1
    model = "boston"


class V2Reuters(V2User):
    weight = 1
    model = "reuters"


class V2Imdb(V2User):
    weight = 1
    model = "imdb"


class V1Boston(V1User):
    weight = 1
    model = "boston"


class V1Reuters(V1User):
    weight = 1
    model = "reuters"

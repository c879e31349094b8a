"""The adaptive batcher (service/batching.py) with a fake model, and batching through the app."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contract.sparse import SparseRows
from service.batching import Batcher, TextRows, assemble
from service.errors import DeadlineExceededError, UnavailableError
from service.server import create_app
from service.settings import Batching
from tests.service.support import (
    HOUSES,
    NEWSWIRES,
    REVIEWS,
    encoder,
    house_rows,
    newest,
    settings,
    v2_body,
    v2_outputs,
)

COLUMNS = 3


class FakeModel:
    """`run` doubles its input and records each batch's size. While `hold` is set, calls wait for
    `release`, so that requests pile up in the queue meanwhile."""

    def __init__(self, fail: Exception | None = None):
        self.sizes: list[int] = []
        self.hold = False
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        if self.hold:
            self.started.set()
            assert self.release.wait(10), "the test never released the fake model"
        if self.fail is not None:
            raise self.fail
        return batch * 2


def rows_of(caller: int, count: int) -> np.ndarray:
    """Rows no other caller has: caller * 1000 + row * 10 + column."""
    return caller * 1000 + np.arange(count * COLUMNS, dtype=np.float32).reshape(count, COLUMNS)


async def wait_for(condition, what: str) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def with_blocked_first_call(batcher: Batcher, model: FakeModel, requests: list[np.ndarray]):
    """Submits one request and blocks the model on it, then submits `requests` so that they
    wait in the queue together; releases the model; returns the answers of `requests`."""
    model.hold = True
    first = asyncio.create_task(batcher.submit(rows_of(999, 1)))
    await wait_for(model.started.is_set, "the first batch to start")
    tasks = [asyncio.create_task(batcher.submit(rows)) for rows in requests]
    await wait_for(lambda: batcher._queue.qsize() == len(requests), "the requests to queue")
    model.release.set()
    model.hold = False
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    return results[1:]


def run(coroutine_function, *args, **batching):
    """Runs a test coroutine with a fresh batcher around a fake model, run in the thread pool
    (unless `inline_below_ms` says otherwise), where it can be held."""
    batching.setdefault("inline_below_ms", 0)

    async def main():
        model = FakeModel(batching.pop("fail", None))
        with ThreadPoolExecutor(2) as executor:
            batcher = Batcher(
                model.run, partial(assemble, dtype=np.float32), Batching(**batching), executor
            )
            try:
                return await coroutine_function(batcher, model, *args)
            finally:
                model.release.set()
                await batcher.close()

    return asyncio.run(main())


def each_gets_its_own_rows(counts: list[int]):
    """A scenario: requests of `counts` rows pile up behind a blocked first call; each caller must
    get back exactly its own rows (doubled by the fake model). Returns the batch sizes."""
    requests = [rows_of(caller, count) for caller, count in enumerate(counts)]

    async def scenario(batcher, model):
        answers = await with_blocked_first_call(batcher, model, requests)
        for rows, answer in zip(requests, answers, strict=True):
            np.testing.assert_array_equal(answer, rows * 2)
        return model.sizes

    return scenario


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows():
    counts = [1, 3, 2, 1, 4, 2, 1, 1]
    sizes = run(each_gets_its_own_rows(counts), max_batch_size=64, max_wait_ms=0)
    assert sizes == [1, sum(counts)]  # the first request alone, then all the others in one call


def test_an_answered_batch_is_not_kept_while_the_batcher_waits():
    """Between batches the batcher holds none of the last one's rows (an IMDB batch is 16 MB that
    would stay resident in an idle process)."""

    async def scenario(batcher, model):
        rows = rows_of(1, 4)
        kept = weakref.ref(rows)
        await batcher.submit(rows)
        del rows
        gc.collect()
        assert not batcher._worker.done()  # it waits for the next batch
        return kept() is None

    assert run(scenario)


def test_batches_respect_max_batch_size():
    counts = [1, 2, 3, 1, 2, 3, 1, 2, 3, 1]
    sizes = run(each_gets_its_own_rows(counts), max_batch_size=4, max_wait_ms=0)
    assert max(sizes) <= 4
    assert sum(sizes[1:]) == sum(counts)
    assert len(sizes) - 1 < len(counts)  # still merged


def test_a_request_larger_than_the_maximum_runs_in_parts_of_the_maximum():
    """So that no inference call needs more memory than one batch."""
    requests = [rows_of(0, 2), rows_of(1, 10), rows_of(2, 2)]

    async def scenario(batcher, model):
        answers = await with_blocked_first_call(batcher, model, requests[:1])
        answers += await asyncio.gather(*(batcher.submit(rows) for rows in requests[1:]))
        for rows, answer in zip(requests, answers, strict=True):
            np.testing.assert_array_equal(answer, rows * 2)
        return model.sizes

    sizes = run(scenario, max_batch_size=4, max_wait_ms=0)
    assert max(sizes) == 4
    assert sum(sizes) == 1 + 2 + 10 + 2


def test_disabled_batching_runs_each_request_alone():
    counts = [1, 3, 2, 5]
    requests = [rows_of(caller, count) for caller, count in enumerate(counts)]

    async def scenario(batcher, model):
        answers = await asyncio.gather(*(batcher.submit(rows) for rows in requests))
        for rows, answer in zip(requests, answers, strict=True):
            np.testing.assert_array_equal(answer, rows * 2)
        return model.sizes

    sizes = run(scenario, enabled=False)
    assert sorted(sizes) == sorted(counts)


def test_a_failure_reaches_every_waiting_caller_and_the_batcher_goes_on():
    requests = [rows_of(caller, 2) for caller in range(5)]

    async def scenario(batcher, model):
        answers = await with_blocked_first_call(batcher, model, requests)
        model.fail = None
        after = await batcher.submit(rows_of(7, 1))
        return answers, after, model.sizes

    answers, after, sizes = run(scenario, max_batch_size=64, max_wait_ms=0,
                                fail=ValueError("model exploded"))  # fmt: skip
    assert sizes[:2] == [1, 10]
    assert all(isinstance(a, ValueError) and str(a) == "model exploded" for a in answers)
    np.testing.assert_array_equal(after, rows_of(7, 1) * 2)


def test_close_answers_what_is_left_and_refuses_new_requests():
    """The registry closes a version only once no request holds it; if some still do after the
    drain time, they get 503, never silence."""

    async def scenario(batcher, model):
        model.hold = True
        running = asyncio.create_task(batcher.submit(rows_of(1, 2)))
        await wait_for(model.started.is_set, "the batch to start")
        queued = asyncio.create_task(batcher.submit(rows_of(2, 1)))
        await wait_for(lambda: batcher._queue.qsize() == 1, "the second request to queue")
        await batcher.close()
        with pytest.raises(UnavailableError):
            await batcher.submit(rows_of(3, 1))
        return await asyncio.gather(running, queued, return_exceptions=True)

    answers = run(scenario)
    assert all(isinstance(a, UnavailableError) for a in answers), answers


def test_a_full_queue_refuses_with_unavailable():
    async def scenario(batcher, model):
        model.hold = True
        running = asyncio.create_task(batcher.submit(rows_of(0, 1)))
        await wait_for(model.started.is_set, "the batch to start")
        queued = [asyncio.create_task(batcher.submit(rows_of(i, 1))) for i in (1, 2)]
        await wait_for(lambda: batcher._queue.qsize() == 2, "the queue to fill")
        with pytest.raises(UnavailableError, match="queue is full"):
            await batcher.submit(rows_of(3, 1))
        model.release.set()
        return await asyncio.gather(running, *queued)

    answers = run(scenario, max_queue_size=2)
    for i, answer in enumerate(answers):
        np.testing.assert_array_equal(answer, rows_of(i, 1) * 2)


def test_an_expired_request_is_answered_and_never_run():
    async def scenario(batcher, model):
        model.hold = True
        running = asyncio.create_task(batcher.submit(rows_of(0, 1)))
        await wait_for(model.started.is_set, "the batch to start")
        expired = asyncio.create_task(batcher.submit(rows_of(1, 5), time.monotonic() + 0.05))
        alive = asyncio.create_task(batcher.submit(rows_of(2, 3), time.monotonic() + 60))
        await asyncio.sleep(0.1)  # the first deadline passes while the model is busy
        model.release.set()
        return await asyncio.gather(running, expired, alive, return_exceptions=True), model.sizes

    (_, expired, alive), sizes = run(scenario)
    assert isinstance(expired, DeadlineExceededError), expired
    np.testing.assert_array_equal(alive, rows_of(2, 3) * 2)
    assert sizes == [1, 3]  # the expired request's 5 rows never reached the model


def test_a_caller_that_stops_waiting_is_not_run():
    """A client that disconnects has its call cancelled by the data plane."""

    async def scenario(batcher, model):
        model.hold = True
        running = asyncio.create_task(batcher.submit(rows_of(0, 1)))
        await wait_for(model.started.is_set, "the batch to start")
        gone = asyncio.create_task(batcher.submit(rows_of(1, 5)))
        staying = asyncio.create_task(batcher.submit(rows_of(2, 3)))
        await wait_for(lambda: batcher._queue.qsize() == 2, "both to queue")
        gone.cancel()
        model.release.set()
        await asyncio.gather(running, staying)
        return model.sizes

    assert run(scenario) == [1, 3]


def test_sparse_rows_are_made_dense_for_the_batch_only():
    dense = rows_of(0, 2)
    sparse = SparseRows(
        np.array([0, 2, 2]), np.array([1, 0, 2]), np.array([5.0, 6.0, 7.0]), (3, COLUMNS)
    )
    batch = assemble([dense, sparse], np.dtype(np.float32))
    expected = np.vstack([dense, [[0, 5, 0], [0, 0, 0], [6, 0, 7]]]).astype(np.float32)
    np.testing.assert_array_equal(batch, expected)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(assemble([sparse[1:3]], np.dtype(np.float32)), expected[3:])


class CountingEncoder:
    """Encodes each text "r<row>" as a row of its number, and records each call's texts."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> SparseRows:
        self.calls.append(list(texts))
        values = np.array([float(text[1:]) for text in texts])
        count = len(texts)
        return SparseRows(np.arange(count), np.zeros(count, int), values, (count, COLUMNS))


def test_the_texts_of_a_batch_are_encoded_in_one_call():
    """Requests of raw texts are encoded by the batch, all its texts at once, in order, and each
    caller gets the rows of its own texts (here among a request of rows)."""
    encode = CountingEncoder()
    requests = [
        TextRows(["r1", "r2"], encode),
        rows_of(5, 2),
        TextRows(["r3"], encode),
        TextRows(["r4", "r5", "r6"], encode),
    ]

    async def scenario(batcher, model):
        answers = await with_blocked_first_call(batcher, model, requests)
        return answers, model.sizes

    answers, sizes = run(scenario, max_batch_size=64, max_wait_ms=0)
    assert sizes == [1, 8]
    assert encode.calls == [["r1", "r2", "r3", "r4", "r5", "r6"]]
    for request, answer in zip(requests, answers, strict=True):
        if isinstance(request, TextRows):
            expected = [[2 * float(t[1:]), 0, 0] for t in request.texts]
            np.testing.assert_array_equal(answer, np.array(expected, np.float32))
        else:
            np.testing.assert_array_equal(answer, request * 2)


@pytest.mark.parametrize("enabled", [True, False])
def test_long_texts_are_encoded_off_the_event_loop(enabled):
    """However fast the model ran last time, a batch with texts marked `offload` runs in a
    thread: encoding long texts would hold up the event loop."""
    loop_thread = threading.get_ident()
    threads: list[bool] = []

    def encode(texts: list[str]) -> SparseRows:
        threads.append(threading.get_ident() == loop_thread)
        return CountingEncoder()(texts)

    async def scenario(batcher, model):
        for offload in (False, False, True, False):
            answer = await batcher.submit(TextRows(["r7"], encode, offload))
            np.testing.assert_array_equal(answer, [[14, 0, 0]])
        return threads

    on_the_loop = run(scenario, enabled=enabled, inline_below_ms=10_000)
    assert on_the_loop == [False, True, False, True]  # measured first in a thread, as others


def test_a_lone_request_needs_no_company():
    async def scenario(batcher, model):
        # A 60 s window for company: a lone client must not wait for it (the bound is only a
        # guard against hanging; a batcher that waited would fail it by far).
        answers = [await asyncio.wait_for(batcher.submit(rows_of(i, 1)), 20) for i in range(3)]
        return answers, model.sizes

    answers, sizes = run(scenario, max_batch_size=64, max_wait_ms=60_000)
    assert sizes == [1, 1, 1]
    for i, answer in enumerate(answers):
        np.testing.assert_array_equal(answer, rows_of(i, 1) * 2)


@pytest.mark.parametrize("enabled", [True, False])
def test_fast_calls_run_on_the_event_loop_and_slow_ones_in_a_thread(enabled):
    """The first call of a batch size is measured in the thread pool; a size whose run took less
    than `inline_below_ms` of CPU then runs on the event loop, a costlier one stays in the pool.
    Waiting is not cost: in a thread the clock also counts the wait for the GIL."""

    def scenario_for(cpu_seconds: float, waits: float = 0):
        async def scenario(batcher, model):
            threads = []

            def run_model(batch):
                threads.append(threading.get_ident())
                time.sleep(waits)
                spent = time.thread_time() + cpu_seconds
                while time.thread_time() < spent:
                    pass
                return batch * 2

            batcher._run = run_model
            for i in range(3):
                answer = await batcher.submit(rows_of(i, 1))
                np.testing.assert_array_equal(answer, rows_of(i, 1) * 2)
            return [t == threading.get_ident() for t in threads]

        return scenario

    fast, slow, waiting = scenario_for(0), scenario_for(0.01), scenario_for(0, waits=0.01)
    assert run(fast, enabled=enabled, inline_below_ms=5) == [False, True, True]
    assert run(slow, enabled=enabled, inline_below_ms=5) == [False, False, False]
    assert run(waiting, enabled=enabled, inline_below_ms=5) == [False, True, True]
    assert run(fast, enabled=enabled, inline_below_ms=0) == [False, False, False]


# --- through the app --------------------------------------------------------------------------


def batch_histogram(text: str, model: str, version: int) -> dict[str, float]:
    labels = {"model": model, "version": str(version)}
    return {
        sample.name.removeprefix("service_batch_size_rows_")
        + (f"<={sample.labels['le']}" if "le" in sample.labels else ""): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "service_batch_size_rows"
        for sample in family.samples
        if all(sample.labels.get(k) == v for k, v in labels.items())
    }


@pytest.mark.parametrize("name", ["boston", "reuters"])
def test_concurrent_requests_are_batched_by_the_app(name):
    version = newest(name)
    if name == "boston":
        houses = [{**HOUSES[i % 3], "crim": 0.01 * (i + 1)} for i in range(48)]
        rows = house_rows(houses, version)
    else:
        texts = [f"{NEWSWIRES[i % 3]} {REVIEWS[i % 3][: 10 + i]}" for i in range(48)]
        rows = encoder(name, version).encode(texts)
    path = f"/v2/models/{name}/infer"

    async def main():
        app = create_app(settings())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                alone = []
                for row in rows:  # one at a time: batches of one row
                    answer = await client.post(path, json=v2_body(name, row[None]))
                    alone.append(v2_outputs(answer.json()))
                together = await asyncio.gather(
                    *(client.post(path, json=v2_body(name, row[None])) for row in rows)
                )
                metrics = (await client.get("/metrics")).text
        return alone, together, metrics

    alone, together, metrics = asyncio.run(main())
    assert all(answer.status_code == 200 for answer in together)
    for single, answer in zip(alone, together, strict=True):
        np.testing.assert_allclose(v2_outputs(answer.json()), single, rtol=1e-6, atol=1e-6)
    # the answers differ from row to row, so a mix-up would show
    assert len({round(float(a[0, 0]), 6) for a in alone}) > len(rows) // 2
    histogram = batch_histogram(metrics, name, version)
    assert histogram["sum"] == 2 * len(rows)  # every row inferred once per request
    assert histogram["count"] > histogram["bucket<=1.0"]  # batches of more than one row
    assert histogram["count"] < 2 * len(rows)  # fewer inference calls than requests


def test_concurrent_raw_texts_are_encoded_and_batched_together_by_the_app():
    """Raw-text requests reach the batcher unencoded: merged into batches, each answered for its
    own texts, exactly as when it comes alone."""
    version = newest("imdb")
    texts = [
        f"{REVIEWS[i % 3][: 20 + 7 * i]} {REVIEWS[(i + 1) % 3][-(5 + i) :]}" for i in range(48)
    ]

    async def main():
        app = create_app(settings())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                alone = [
                    (await client.post("/api/imdb", json={"reviews": [text]})).json()
                    for text in texts
                ]
                together = await asyncio.gather(
                    *(client.post("/api/imdb", json={"reviews": [text]}) for text in texts)
                )
                metrics = (await client.get("/metrics")).text
        return alone, together, metrics

    alone, together, metrics = asyncio.run(main())

    def scores(answer: dict) -> list[float]:
        return list(answer["predictions"][0]["scores"].values())

    assert all(answer.status_code == 200 for answer in together)
    for single, answer in zip(alone, together, strict=True):
        np.testing.assert_allclose(scores(answer.json()), scores(single), rtol=1e-6, atol=1e-6)
    assert len({round(scores(a)[0], 6) for a in alone}) > len(texts) // 2
    histogram = batch_histogram(metrics, "imdb", version)
    assert histogram["sum"] == 2 * len(texts)
    assert histogram["count"] < 2 * len(texts)  # fewer inference calls than requests


def test_the_app_encodes_long_texts_off_the_event_loop():
    """Texts of more than an eighth of `offload_above_bytes` characters are encoded in a thread,
    shorter ones on the event loop once their batch size is known to run fast."""
    limit = 80_000  # bytes: texts of over 10,000 characters go to a thread
    fast = Batching(inline_below_ms=60_000)

    async def main():
        app = create_app(settings(offload_above_bytes=limit, default_batching=fast))
        async with app.router.lifespan_context(app):
            text_encoder = app.state.dataplane.registry.get("imdb").encoder
            encode, on_the_loop = text_encoder.word_ids_batch, []

            def recorded(texts):
                on_the_loop.append(threading.get_ident() == loop_thread)
                return encode(texts)

            text_encoder.word_ids_batch = recorded
            loop_thread = threading.get_ident()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                for text in ["a good movie", "a good movie", "good " * 2_100, "a good movie"]:
                    answer = await client.post("/api/imdb", json={"reviews": [text]})
                    assert answer.status_code == 200
        return on_the_loop

    # The first batch of its size is measured in a thread; 10,500 characters go to one always.
    assert asyncio.run(main()) == [False, True, False, True]

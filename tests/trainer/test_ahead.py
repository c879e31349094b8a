import threading

import pytest

from trainer.ahead import ahead, mapped_ahead


def test_items_come_in_order():
    assert list(ahead(iter(range(100)), depth=3)) == list(range(100))


def test_an_error_in_the_thread_is_raised_in_the_caller():
    def failing():
        yield 1
        raise ValueError("broken batch")

    items = ahead(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match="broken batch"):
        next(items)


def test_a_caller_that_stops_early_stops_the_thread():
    made = []

    def endless():
        while True:
            made.append(len(made))
            yield made[-1]

    items = ahead(endless())
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert not any(thread.name == "ahead" for thread in threading.enumerate())
    assert len(made) <= 5  # the caller's 3, one queued, one being made


def test_mapped_items_come_in_order_from_several_threads_never_far_ahead():
    seen, threads = [], set()

    def square(n):
        seen.append(n)
        threads.add(threading.get_ident())
        return n * n

    results = mapped_ahead(square, range(50), threads=2, depth=3)
    assert next(results) == 0
    assert len(seen) <= 1 + 3 + 1  # the one taken, the depth, one being submitted
    assert list(results) == [n * n for n in range(1, 50)]
    assert threading.get_ident() not in threads


def test_a_mapped_error_is_raised_in_the_caller():
    def failing(n):
        if n == 2:
            raise ValueError("broken batch")
        return n

    with pytest.raises(ValueError, match="broken batch"):
        list(mapped_ahead(failing, range(5)))

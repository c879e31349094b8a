import threading

import pytest

from trainer.ahead import ahead


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

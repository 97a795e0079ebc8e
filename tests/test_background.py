import os
import sys
import threading

import pytest

from hzexp.background import in_background


def test_items_arrive_in_order_from_another_thread():
    made_in = []

    def items():
        for k in range(50):
            made_in.append(threading.get_native_id())
            yield k

    assert list(in_background(items, depth=3, name="t-order")) == list(range(50))
    assert set(made_in) == {made_in[0]} and made_in[0] != threading.get_native_id()


def test_a_producer_error_is_raised_in_the_consumer_with_its_type():
    def items():
        yield 1
        raise KeyError("column r_auto")

    consumer = in_background(items, depth=2, name="t-error")
    assert next(consumer) == 1
    with pytest.raises(KeyError, match="column r_auto"):
        next(consumer)


def test_closing_early_stops_and_joins_the_producer():
    def endless():
        k = 0
        while True:
            yield k
            k += 1

    consumer = in_background(endless, depth=2, name="t-endless")
    assert [next(consumer) for _ in range(5)] == [0, 1, 2, 3, 4]
    consumer.close()
    assert not any(t.name == "t-endless" for t in threading.enumerate())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values")
def test_niceness_applies_to_the_producer_thread_only():
    def own_nice():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = own_nice()
    seen = list(in_background(lambda: (own_nice() for _ in range(3)), depth=1, name="t-nice",
                              niceness=5))
    assert seen == [min(before + 5, 19)] * 3
    assert own_nice() == before

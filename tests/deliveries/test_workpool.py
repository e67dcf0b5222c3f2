import threading
import time

import pytest

from deliveries.workpool import WorkPool


def test_every_item_is_worked_once_and_shutdown_waits_for_them():
    done: list[int] = []
    lock = threading.Lock()

    def work(item: int) -> None:
        time.sleep(0.001)
        with lock:
            done.append(item)

    pool = WorkPool(8, work, name="test-pool")
    for item in range(200):
        pool.submit(item)
    pool.shutdown()

    assert sorted(done) == list(range(200))


def test_threads_start_as_work_arrives_and_never_exceed_the_size():
    release = threading.Event()
    running = threading.Semaphore(0)
    seen: set[str] = set()

    def work(item: int) -> None:
        seen.add(threading.current_thread().name)
        running.release()
        release.wait(5)

    pool = WorkPool(3, work, name="test-pool")
    for item in range(5):
        pool.submit(item)
    for _ in range(3):
        assert running.acquire(timeout=5)
    # Three threads are busy; the other two items wait for one of them.
    assert not running.acquire(timeout=0.1)
    release.set()
    pool.shutdown()

    assert seen == {"test-pool_0", "test-pool_1", "test-pool_2"}


def test_an_idle_thread_takes_the_next_item_rather_than_a_new_one():
    names: list[str] = []
    finished = threading.Semaphore(0)

    def work(item: int) -> None:
        names.append(threading.current_thread().name)
        finished.release()

    pool = WorkPool(4, work, name="test-pool")
    for item in range(10):
        pool.submit(item)
        assert finished.acquire(timeout=5)
        time.sleep(0.01)  # the thread is back waiting before the next item comes
    pool.shutdown()

    assert set(names) == {"test-pool_0"}


def test_a_pool_needs_a_thread():
    with pytest.raises(ValueError, match="at least one thread"):
        WorkPool(0, print, name="test-pool")

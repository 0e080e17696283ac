"""Worker threads that carry their names to the OS, and numpy's BLAS kept to one thread in a server.

Python 3.11 names threads only inside the interpreter, so `top -H`, py-spy and bench.latency's
per-thread CPU would see every thread as "python". Pools made here set the OS name (Linux keeps 15
characters) with setproctitle, so the encoder, decoder, speaker, topic and store threads can be told
apart from onnxruntime's own workers.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from setproctitle import setthreadtitle
from threadpoolctl import threadpool_limits


def named_pool(name: str, workers: int = 1, initializer: Callable[[], None] | None = None) -> ThreadPoolExecutor:
    """A ThreadPoolExecutor whose threads are named `name_0`, `name_1`, … in Python and in the OS."""
    def start() -> None:
        setthreadtitle(threading.current_thread().name)
        if initializer is not None:
            initializer()

    return ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=start)


class BlasOnOneThread:
    """numpy's BLAS on one thread while any server in the process runs; the original limits come back
    when the last one stops (tests run several servers at once).

    OpenBLAS keeps a worker per core that spins after each matrix product (the speaker front-end's
    mel products): at one speaker-tagged stream those workers took 0.0147 of a core per second of
    audio, a third of the server's CPU, and the speaker thread did not get slower without them
    (bench.latency's "other" threads; bench/RESULTS.md). The server's own pools share out the cores.
    """
    _lock = threading.Lock()
    _holders = 0
    _limits = None

    @classmethod
    def acquire(cls) -> None:
        with cls._lock:
            if cls._holders == 0:
                cls._limits = threadpool_limits(1, user_api="blas")
            cls._holders += 1

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._holders -= 1
            if cls._holders == 0:
                cls._limits.restore_original_limits()
                cls._limits = None

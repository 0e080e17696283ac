"""Worker threads that carry their names to the OS.

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


def named_pool(name: str, workers: int = 1, initializer: Callable[[], None] | None = None) -> ThreadPoolExecutor:
    """A ThreadPoolExecutor whose threads are named `name_0`, `name_1`, … in Python and in the OS."""
    def start() -> None:
        setthreadtitle(threading.current_thread().name)
        if initializer is not None:
            initializer()

    return ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=start)

"""Cross-stream dynamic batching: chunks from all live sessions share one ONNX call.

Sessions `await batcher.encode(stream, chunk)`; one worker task takes whatever has queued (up to
`max_batch`, waiting at most `max_wait_ms` for company after the first arrives, and not at all once
every stream heard from in the last `active_s` is in the batch), runs the encoder in a worker
thread, and resolves each session's future. While a batch runs, the next one queues up, so under
load batches grow by themselves. The event loop never runs inference.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np

from models.runtime import EncoderStream, StreamingEncoder
from streaming.threads import named_pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOptions:
    max_batch: int = 32
    max_wait_ms: float = 5.0
    active_s: float = 1.0          # a stream that sent a chunk this recently may join the batch


class EncoderBatcher:
    def __init__(self, encoder: StreamingEncoder, options: BatchOptions, on_batch=None):
        self.encoder, self.options = encoder, options
        self.on_batch = on_batch  # callback(batch_size, seconds) for metrics
        self._queue: asyncio.Queue = asyncio.Queue()
        self._executor = named_pool("encoder")
        self._task: asyncio.Task | None = None
        self._last_seen: dict[int, float] = {}  # id(stream) -> monotonic time of its last chunk

    async def start(self) -> None:
        self._task = asyncio.create_task(self._worker(), name="encoder-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def encode(self, stream: EncoderStream, chunk: np.ndarray) -> np.ndarray:
        """Log-probs [frames, V] for one chunk of one stream (one chunk in flight per stream)."""
        if self._task is None or self._task.done():
            raise RuntimeError("encoder batcher is not running")
        future = asyncio.get_running_loop().create_future()
        self._last_seen[id(stream)] = time.monotonic()
        self._queue.put_nowait((stream, chunk, future))
        return await future

    def _active(self) -> int:
        """Streams that sent a chunk within `active_s`."""
        horizon = time.monotonic() - self.options.active_s
        self._last_seen = {key: seen for key, seen in self._last_seen.items() if seen >= horizon}
        return len(self._last_seen)

    async def _gather(self) -> list:
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.options.max_wait_ms / 1000
        while len(batch) < self.options.max_batch:
            if self._queue.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or len(batch) >= self._active():  # no one else is due: go now
                    break
                try:  # asyncio.timeout: a cancel is never lost (see EventSender in server.py)
                    async with asyncio.timeout(remaining):
                        batch.append(await self._queue.get())
                except TimeoutError:
                    break
            else:
                batch.append(self._queue.get_nowait())
        return [item for item in batch if not item[2].done()]  # drop cancelled sessions

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            streams, chunks, futures = zip(*batch)
            start = time.perf_counter()
            try:
                log_probs = await loop.run_in_executor(self._executor, self.encoder.step, list(streams),
                                                       np.stack(chunks))
            except Exception as exc:  # a model failure fails these chunks, not the server
                log.exception("encoder step failed for a batch of %d", len(batch))
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self.on_batch:
                self.on_batch(len(batch), time.perf_counter() - start)
            for future, result in zip(futures, log_probs):
                if not future.done():
                    future.set_result(result)

"""The cross-stream batcher: who waits for whom, and what a model failure does."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from streaming.batcher import BatchOptions, EncoderBatcher


class RecordingEncoder:
    """Stands in for StreamingEncoder: returns each chunk's first sample and records batch sizes."""

    def __init__(self, fail: bool = False):
        self.batches: list[int] = []
        self.fail = fail

    def step(self, streams, chunks: np.ndarray) -> np.ndarray:
        self.batches.append(len(streams))
        if self.fail:
            raise RuntimeError("model exploded")
        return chunks[:, :1]


async def with_batcher(encoder, options: BatchOptions, body):
    batcher = EncoderBatcher(encoder, options)
    await batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.close()


def test_a_lone_stream_does_not_wait_for_company():
    """One live stream: its chunk runs at once, not after max_wait_ms (here 30 s)."""
    encoder = RecordingEncoder()

    async def body(batcher):
        stream = object()
        for value in (1.0, 2.0, 3.0):
            out = await asyncio.wait_for(batcher.encode(stream, np.full(4, value, np.float32)), timeout=5)
            assert out[0] == value

    asyncio.run(with_batcher(encoder, BatchOptions(max_wait_ms=30_000), body))
    assert encoder.batches == [1, 1, 1]


def test_a_batch_waits_for_a_stream_that_is_due():
    """Two live streams: the first chunk of a round waits for the other stream's (max_wait_ms 30 s)."""
    encoder = RecordingEncoder()

    async def body(batcher):
        a, b = object(), object()
        await asyncio.gather(batcher.encode(a, np.ones(4, np.float32)), batcher.encode(b, np.ones(4, np.float32)))
        first = asyncio.create_task(batcher.encode(a, np.ones(4, np.float32)))
        await asyncio.sleep(0.2)            # b is late; a's chunk must still be waiting for it
        assert not first.done()
        await asyncio.wait_for(asyncio.gather(first, batcher.encode(b, np.ones(4, np.float32))), timeout=5)

    asyncio.run(with_batcher(encoder, BatchOptions(max_wait_ms=30_000), body))
    assert encoder.batches == [2, 2]


def test_a_stream_gone_quiet_is_not_waited_for():
    """A stream that sent nothing for active_s no longer holds up the others."""
    encoder = RecordingEncoder()

    async def body(batcher):
        a, b = object(), object()
        await asyncio.gather(batcher.encode(a, np.ones(4, np.float32)), batcher.encode(b, np.ones(4, np.float32)))
        await asyncio.sleep(0.3)            # longer than active_s: b has left
        await asyncio.wait_for(batcher.encode(a, np.ones(4, np.float32)), timeout=5)

    asyncio.run(with_batcher(encoder, BatchOptions(max_wait_ms=30_000, active_s=0.2), body))
    assert encoder.batches == [2, 1]


def test_a_model_failure_fails_that_batch_and_the_batcher_goes_on():
    encoder = RecordingEncoder(fail=True)

    async def body(batcher):
        with pytest.raises(RuntimeError, match="model exploded"):
            await asyncio.wait_for(batcher.encode(object(), np.ones(4, np.float32)), timeout=5)
        encoder.fail = False
        out = await asyncio.wait_for(batcher.encode(object(), np.full(4, 7.0, np.float32)), timeout=5)
        assert out[0] == 7.0

    asyncio.run(with_batcher(encoder, BatchOptions(max_wait_ms=0), body))

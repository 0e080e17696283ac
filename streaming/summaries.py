"""Topics of a live session: final segments -> sentence embeddings -> TopicTracker -> `topic`
events with a title and bullets, stored in the note. Nothing here runs on the event loop or
blocks captions.

Threads: one engine-wide "topics" thread embeds segments (a few ms each); one "summaries" thread
runs the LLM. Each session feeds its finals into a bounded asyncio queue drained by its own task.

When a topic closes, its `topic` event goes out at once with an extractive summary
(`"summary": "extractive"`) and is stored; the LLM job is queued, and when it answers the topic is
stored again (same index, `store.add_topic` replaces) and a second `topic` event with the same
`index` and `"summary": "<backend>"` follows. Clients treat `topic` events as upserts by index.
A slow, failed or overloaded LLM leaves the extractive summary in place (logged, no `error`).
On `stop` the last topic is closed and its LLM summary awaited up to `stop_timeout`; an answer
arriving later still updates the stored note.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from dataclasses import dataclass

from models.llm import (ExtractiveSummarizer, LocalLLM, OpenAICompatibleLLM, RollingSummarizer, Summarizer,
                        Summary)
from streaming.store import NoteStore, Segment
from streaming.topics import ClosedTopic, TopicOptions, TopicTracker
from streaming.threads import named_pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SummaryOptions:
    backend: str = "local"              # "local" | "openai" | "none" (extractive only)
    local_model: str = "smollm2-135m-instruct"
    url: str | None = None              # OpenAI-compatible API base, e.g. http://127.0.0.1:8080/v1
    model: str = "default"
    key: str | None = None
    timeout: float = 60.0               # one LLM call
    stop_timeout: float = 20.0          # how long `stop` waits for the last topic's summary
    max_chars: int = 1500               # text per LLM call; longer topics are summarised rolling
    max_pending: int = 16               # LLM jobs queued engine-wide; beyond that: extractive only
    threads: int = 1


class TopicService:
    """Engine-wide: the embedder and the summariser, each behind its own thread, both lazy."""

    def __init__(self, options: SummaryOptions, topic_options: TopicOptions = TopicOptions(),
                 embedder=None, backend: Summarizer | None = None):
        self.options, self.topic_options = options, topic_options
        self._embedder, self._backend = embedder, backend
        self._embed_pool = named_pool("topics")
        self._llm_pool = named_pool("summaries", initializer=_lower_priority)
        self._lock = threading.Lock()
        self._rolling: RollingSummarizer | None = None
        self.pending = 0
        self.disabled: str | None = None   # why topics are off (embedder missing), logged once

    def _embed(self, text: str):
        if self._embedder is None:
            from models.text_embedding import TextEmbedder, TextEmbedderOptions
            self._embedder = TextEmbedder(TextEmbedderOptions(threads=self.options.threads))
        return self._embedder.embed([text])[0]

    async def embed(self, text: str):
        if self.disabled:
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._embed_pool, self._embed, text)
        except Exception as exc:
            self.disabled = str(exc)
            log.error("topic segmentation is off: %s", exc)
            return None

    def _summarizer(self) -> RollingSummarizer:
        with self._lock:
            if self._rolling is None:
                backend, o = self._backend, self.options
                if backend is None and o.backend == "openai":
                    backend = OpenAICompatibleLLM(o.url, o.model, o.key, o.timeout)
                elif backend is None and o.backend == "local":
                    try:
                        backend = LocalLLM(o.local_model, threads=o.threads, timeout=o.timeout)
                    except Exception as exc:
                        log.error("local LLM unavailable (%s): topic summaries are extractive", exc)
                self._rolling = RollingSummarizer(backend, o.max_chars)
            return self._rolling

    @property
    def uses_llm(self) -> bool:
        return self.options.backend != "none" or self._backend is not None

    def extractive(self, text: str) -> Summary:
        return ExtractiveSummarizer().summarize(text)

    def submit(self, text: str) -> asyncio.Future | None:
        """Queue an LLM summary; None when there is no LLM or the queue is full."""
        if not self.uses_llm:
            return None
        with self._lock:
            if self.pending >= self.options.max_pending:
                log.warning("%d summaries pending: this topic keeps its extractive summary", self.pending)
                return None
            self.pending += 1

        def run() -> Summary:
            try:
                return self._summarizer().summarize(text)
            finally:
                with self._lock:
                    self.pending -= 1
        return asyncio.get_running_loop().run_in_executor(self._llm_pool, run)

    def close(self) -> None:
        self._embed_pool.shutdown(wait=True, cancel_futures=True)
        self._llm_pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    """Summaries are background work and captions are not: on Linux, where niceness is per thread
    (and inherited by the threads llama.cpp starts from this one), a busy machine gives the encoder
    and decoder threads the CPU first."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def topic_text(segments: list[Segment]) -> str:
    """The segments as one text, each ending as a sentence (ASR finals often carry no punctuation)."""
    texts = [s.text.strip() for s in segments if s.text.strip()]
    return " ".join(t if t[-1] in ".!?" else t + "." for t in texts)


class SessionTopics:
    """One session's topic pipeline. `add(segment)` never waits; `drain()` returns the topic
    event fields ready to send; `finish()` closes the last topic."""

    def __init__(self, service: TopicService, store: NoteStore, session_id: str, first_index: int = 0,
                 queue_size: int = 256):
        self.service, self.store, self.session_id = service, store, session_id
        self.tracker = TopicTracker(service.topic_options)
        self.segments: list[Segment] = []            # fed to the tracker, in order
        self.next_index = first_index
        self.ready: list[dict] = []
        self.jobs: set[asyncio.Future] = set()
        self.queue: asyncio.Queue[Segment | None] = asyncio.Queue(queue_size)
        self.task = asyncio.create_task(self._run(), name=f"topics-{session_id}")

    def add(self, segment: Segment) -> None:
        try:
            self.queue.put_nowait(segment)
        except asyncio.QueueFull:
            log.warning("session %s: topic queue full, segment %d not segmented", self.session_id, segment.index)

    def drain(self) -> list[dict]:
        ready, self.ready = self.ready, []
        return ready

    async def finish(self, timeout: float | None = None) -> list[dict]:
        """Close the last topic, wait (up to `timeout`) for pending summaries, return what is ready."""
        timeout = self.service.options.stop_timeout if timeout is None else timeout
        await self.queue.put(None)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.task
                while self.jobs:
                    await asyncio.wait(list(self.jobs))
        if not self.task.done():
            self.task.cancel()
        return self.drain()

    async def _run(self) -> None:
        while (segment := await self.queue.get()) is not None:
            vector = await self.service.embed(segment.text)
            if vector is None:
                continue
            self.segments.append(segment)
            for topic in self.tracker.add(vector):
                await self._close(topic)
        for topic in self.tracker.finish():
            await self._close(topic)

    async def _close(self, topic: ClosedTopic) -> None:
        segments = self.segments[topic.start:topic.end + 1]
        text = topic_text(segments)
        fields = {"index": self.next_index, "start_segment": segments[0].index, "end_segment": segments[-1].index,
                  "start": segments[0].start, "end": segments[-1].end}
        self.next_index += 1
        summary = self.service.extractive(text)
        await self._publish(fields, summary)
        job = self.service.submit(text)
        if job is not None:
            self.jobs.add(job)
            job.add_done_callback(lambda f: self._answered(f, fields))

    def _answered(self, future: asyncio.Future, fields: dict) -> None:
        self.jobs.discard(future)
        if future.cancelled() or future.exception() is not None:
            return
        summary = future.result()
        if summary.source != "extractive":
            task = asyncio.ensure_future(self._publish(fields, summary))
            self.jobs.add(task)
            task.add_done_callback(self.jobs.discard)

    async def _publish(self, fields: dict, summary: Summary) -> None:
        topic = {**fields, "title": summary.title, "bullets": list(summary.bullets), "summary": summary.source}
        try:
            await asyncio.to_thread(self.store.add_topic, self.session_id, topic)
        except Exception:
            log.exception("session %s: storing topic %d failed", self.session_id, fields["index"])
        self.ready.append(topic)

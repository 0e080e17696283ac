"""One transcription session: audio in, events out.

Audio at the client's rate -> resampler -> whole model chunks -> batched encoder -> beam search ->
endpointer -> `partial` / `final` events. Finals are committed to the note store before they are
sent, so a final the client has seen is on disk. A resumed session continues its timeline and
segment numbering.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from decoders.results import Transcript
from streaming.audio import StreamResampler
from streaming.endpoint import Endpointer
from streaming.engine import Engine
from streaming.protocol import ErrorCode, ProtocolError, StartOptions, rounded
from streaming.store import Segment, Word

@dataclass
class SessionState:
    session_id: str
    seq: int = 0
    segments: int = 0              # next segment index
    time_offset: float = 0.0       # seconds of earlier connections (resumed sessions)
    samples_in: int = 0            # model-rate samples received this connection
    frames_done: int = 0           # encoder frames decoded this connection
    utterance_start: int = 0       # frame where the current utterance began
    last_partial: str = ""
    ahead_span: tuple[float, float] | None = None  # span last sent to SessionSpeakers.embed_ahead
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


@dataclass(frozen=True)
class ClosedUtterance:
    transcript: Transcript
    base: float                    # where it began on the session's timeline, seconds
    rule: str                      # the endpoint rule that closed it
    at: float                      # the session time at which it closed


class Session:
    def __init__(self, engine: Engine, session_id: str, options: StartOptions):
        self.engine, self.options = engine, options
        try:
            info = engine.store.open_session(session_id, {"sample_rate": options.sample_rate,
                                                          "encoding": options.encoding, **options.extra})
        except ValueError as exc:  # the store owns what a valid session id is
            raise ProtocolError(ErrorCode.BAD_MESSAGE, str(exc), fatal=True) from None
        self.state = SessionState(session_id, segments=info.n_segments, time_offset=info.duration)
        self.resampler = StreamResampler(options.sample_rate, engine.sample_rate)
        self.stream = engine.encoder.new_stream()
        self.decoder = engine.new_decoder(options.hotwords)
        self.endpointer = Endpointer(engine.options.endpoint, engine.frame_duration, engine.blank_id)
        self.resumed = info.n_segments > 0
        self.speakers = engine.new_speakers(options, session_id, info.duration, self.resumed)
        self.topics = engine.new_topics(options, session_id, self.resumed)

    @property
    def session_id(self) -> str:
        return self.state.session_id

    def event(self, kind: str, **fields) -> dict:
        self.state.seq += 1
        event = {"type": kind, "session_id": self.session_id, "seq": self.state.seq, **fields}
        self.engine.publish(self.session_id, event)
        return event

    def ready_event(self) -> dict:
        cfg = self.engine.bundle.config
        return self.event("ready", sample_rate=self.options.sample_rate, encoding=self.options.encoding,
                          model_sample_rate=cfg.sample_rate, chunk_ms=round(1000 * cfg.chunk_samples / cfg.sample_rate),
                          resumed=self.resumed, next_segment=self.state.segments,
                          time_offset=rounded(self.state.time_offset))

    async def feed(self, samples: np.ndarray) -> list[dict]:
        """Samples at the client's rate -> the events they produce (partials, finals)."""
        resampled = self.resampler.process(samples)
        if self.speakers:
            self.speakers.append(resampled)
        self.state.samples_in += len(resampled)
        self.state.pending = np.concatenate([self.state.pending, resampled])
        return await self._run_chunks(last=False) + self._topic_events()

    def _topic_events(self) -> list[dict]:
        """`topic` events whose summary is ready (streaming/summaries.py works in the background)."""
        return [self.event("topic", **topic) for topic in self.topics.drain()] if self.topics else []

    async def flush(self) -> list[dict]:
        """End of audio: decode what is held and emit the last final. Sent before `close()` runs,
        so the last caption never waits for the last topic's summary."""
        tail = self.resampler.flush()
        if self.speakers:
            self.speakers.append(tail)
        self.state.samples_in += len(tail)
        self.state.pending = np.concatenate([self.state.pending, tail])
        events = await self._run_chunks(last=True)
        return events + await self._final()

    async def close(self) -> list[dict]:
        """After `flush()`: close the last topic (its summary awaited up to the LLM timeout) and the
        note, emit `topic` and `note`."""
        events = []
        if self.topics:
            events += [self.event("topic", **topic) for topic in await self.topics.finish()]
        await asyncio.to_thread(self.engine.store.close_session, self.session_id)
        duration = self.state.time_offset + self.state.samples_in / self.engine.sample_rate
        events.append(self.event("note", segments=self.state.segments, duration=rounded(duration),
                                 url=f"/v1/notes/{self.session_id}"))
        return events

    async def _run_chunks(self, last: bool) -> list[dict]:
        # A step reads `needed` samples (the chunk plus the encoder's right context, if any) and
        # consumes `size` of them; at the end, zeros complete the last chunk and its right context.
        size, needed, events = self.engine.encoder.chunk_samples, self.engine.encoder.input_samples, []
        if last and len(self.state.pending):
            pad = -len(self.state.pending) % size + needed - size
            self.state.pending = np.pad(self.state.pending, (0, pad))
        while len(self.state.pending) >= needed:
            chunk, self.state.pending = self.state.pending[:needed], self.state.pending[size:]
            log_probs = await self.engine.batcher.encode(self.stream, chunk)
            real = self.engine.encoder.frames_for(self.state.samples_in) - self.state.frames_done
            log_probs = log_probs[:max(0, real)] if last else log_probs
            events += await self._decode(log_probs)
        return events

    async def _decode(self, log_probs: np.ndarray) -> list[dict]:
        if not len(log_probs):
            return []
        began = time.perf_counter()
        decision, result = await self.engine.run_decoder(self._advance, log_probs)
        if decision == "final":
            return await self._final(result, began)
        if decision == "reset":
            return []
        partial = result
        if self.speakers:
            self._embed_ahead(partial)
        if partial.text != self.state.last_partial:
            self.state.last_partial = partial.text
            base = self._utterance_base()
            return [self.event("partial", text=partial.text,
                               words=[{"word": w.text, "start": rounded(base + w.start), "end": rounded(base + w.end)}
                                      for w in partial.words])]
        return []

    def _utterance_base(self) -> float:
        """Where the current utterance starts on the session's timeline (word times add to it)."""
        return self.state.time_offset + self.state.utterance_start * self.engine.frame_duration

    def _embed_ahead(self, partial) -> None:
        """Once speech pauses, embed the heard words' span in the speaker thread, so the final that
        most likely follows (the partial after speech stops is the final) need not wait for it."""
        silence = self.endpointer.state.trailing_silence * self.engine.frame_duration
        if not partial.words or silence < self.speakers.tracker.options.ahead_silence_s:
            return
        base = self._utterance_base()
        span = (rounded(base + partial.words[0].start), rounded(base + partial.words[-1].end))
        if span != self.state.ahead_span:
            self.state.ahead_span = span
            self.engine.speakers_ahead(self.speakers.embed_ahead, *span)

    def _advance(self, log_probs: np.ndarray) -> tuple[str | None, Transcript | ClosedUtterance]:
        """In the decoder thread: beam search, then the endpoint rules -> (decision, the partial or,
        on a final or reset, the closed utterance). Closing in the same call spares a final a
        second wait behind the other streams' chunks in the decoder queue."""
        self.decoder.advance(log_probs)
        decision = self.endpointer.update(log_probs)
        self.state.frames_done += len(log_probs)
        if decision is None:
            return None, self.decoder.partial()
        return decision, self._close_utterance()

    def _close_utterance(self) -> ClosedUtterance:
        """In the decoder thread: end the current utterance and start the next one."""
        state = self.state
        closed = ClosedUtterance(self.decoder.finalize(), self._utterance_base(), self.endpointer.rule,
                                 rounded(state.time_offset + state.frames_done * self.engine.frame_duration))
        self.endpointer.reset()
        state.utterance_start = state.frames_done
        state.last_partial, state.ahead_span = "", None
        return closed

    async def _final(self, closed: ClosedUtterance | None = None, began: float | None = None) -> list[dict]:
        """The `final` of a closed utterance (closed here at the end of audio), committed first."""
        began = time.perf_counter() if began is None else began
        if closed is None:
            closed = await self.engine.run_decoder(self._close_utterance)
        result, base = closed.transcript, closed.base
        endpoint = {"rule": closed.rule, "at": closed.at}
        if not result.text:
            return []
        words = tuple(Word(w.text, rounded(base + w.start), rounded(base + w.end), round(w.confidence, 3))
                      for w in result.words)
        segment = Segment(index=self.state.segments, text=result.text,
                          start=words[0].start if words else rounded(base),
                          end=words[-1].end if words else closed.at,
                          words=words)
        stored = asyncio.to_thread(self.engine.store.add_segment, self.session_id, segment)
        tagging = None
        if self.speakers:  # embedding in the speaker thread while the store commits the text
            tag_began = time.perf_counter()
            _, tagging = await asyncio.gather(stored, self.engine.run_speakers(self.speakers.tag, segment))
            if tagging:
                await asyncio.to_thread(self.speakers.persist, self.engine.store, self.session_id,
                                        segment.index, tagging)
                if tagging.embedded_ahead:
                    self.engine.metrics.speaker_ahead.inc()
            self.engine.metrics.speaker_seconds.observe(time.perf_counter() - tag_began)
        else:
            await stored
        self.state.segments += 1
        if self.topics:
            self.topics.add(segment)
        self.engine.metrics.final_seconds.observe(time.perf_counter() - began)
        events = [self.event("speaker_merge", **m) for m in self.speakers.merge_events(tagging)] if tagging else []
        events.append(self.event("final", segment=segment.index, text=segment.text, start=segment.start,
                                 end=segment.end, endpoint=endpoint,
                                 **(self.speakers.final_fields(tagging) if self.speakers
                                                     else {"speaker": None}),
                                 words=[{"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence}
                                        for w in words]))
        if tagging:
            events.append(self.event("speaker_share", **self.speakers.share_fields()))
        return events

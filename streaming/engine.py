"""Per-process resources shared by all sessions: model, batcher, decoder factory, store, MQTT, metrics."""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from decoders.beam_search import StreamingBeamSearch
from decoders.hotwords import HotwordScorer
from decoders.language_model import bundle_fusion
from decoders.options import DecoderOptions
from decoders.vocabulary import Vocabulary
from models.bundle import load_bundle
from models.runtime import StreamingEncoder
from streaming.batcher import BatchOptions, EncoderBatcher
from streaming.endpoint import EndpointOptions
from streaming.mqtt import MqttOptions, MqttPublisher
from streaming.speakers import SessionSpeakers, SpeakerOptions
from streaming.store import NoteStore
from streaming.summaries import SessionTopics, SummaryOptions, TopicService
from streaming.topics import TopicOptions
from streaming.threads import BlasOnOneThread, named_pool

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class EngineOptions:
    model: Path
    precision: str = "fp32"
    threads: int = 2
    db: Path = Path("steno-notes.sqlite3")
    use_lm: bool = True
    batch: BatchOptions = field(default_factory=BatchOptions)
    endpoint: EndpointOptions = field(default_factory=EndpointOptions)
    decoder: DecoderOptions | None = None  # None: the defaults with the bundle LM's tuned alpha/beta
    mqtt: MqttOptions | None = None
    speakers: SpeakerOptions = field(default_factory=SpeakerOptions)  # defaults; sessions may override
    topics: TopicOptions = field(default_factory=TopicOptions)
    summaries: SummaryOptions = field(default_factory=SummaryOptions)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("steno_sessions_active", "Live sessions", registry=r)
        self.sessions_total = Counter("steno_sessions", "Sessions started", registry=r)
        self.audio_seconds = Counter("steno_audio_seconds", "Audio received, seconds", registry=r)
        self.batch_size = Histogram("steno_batch_size", "Streams per encoder call", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.encoder_seconds = Histogram("steno_encoder_step_seconds", "Encoder call latency", registry=r,
                                         buckets=(.005, .01, .02, .05, .1, .2, .5, 1, 2))
        self.final_seconds = Histogram("steno_final_latency_seconds",
                                       "Decode + persist time of a final segment", registry=r,
                                       buckets=(.001, .005, .01, .02, .05, .1, .2, .5))
        self.errors = Counter("steno_errors", "Error events sent", ["code"], registry=r)
        self.speaker_seconds = Histogram("steno_speaker_tag_seconds", "Speaker embedding + clustering "
                                         "of a final segment", registry=r,
                                         buckets=(.005, .01, .02, .05, .1, .2, .5, 1))
        self.speaker_ahead = Counter("steno_speaker_embedded_ahead", "Finals whose speaker embedding ran "
                                     "before the endpoint fired", registry=r)

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.encoder_seconds.observe(seconds)


class Engine:
    def __init__(self, options: EngineOptions):
        self.options = options
        self.bundle = load_bundle(options.model)
        self.encoder = StreamingEncoder(self.bundle, options.precision, options.threads)
        cfg = self.bundle.config
        self.sample_rate, self.frame_duration, self.blank_id = cfg.sample_rate, cfg.frame_duration, cfg.blank_id
        self.vocabulary = Vocabulary(self.bundle.tokenizer.tokens, cfg.blank_id)
        self.lm, self.decoder_options = bundle_fusion(self.bundle.path / "lm", options.use_lm, options.decoder,
                                                      cfg.frame_duration)
        self.metrics = Metrics()
        self.store = NoteStore(options.db)
        self.batcher = EncoderBatcher(self.encoder, options.batch, self.metrics.on_batch)
        self.mqtt = MqttPublisher(options.mqtt) if options.mqtt else None
        self._decode_pool = named_pool("decoder")
        self.speaker_encoder = self._load_speaker_encoder()
        self._speaker_pool = named_pool("speakers")
        self._holds_blas = False  # BlasOnOneThread, from start() to close()
        self.topics = TopicService(options.summaries, options.topics)  # embedder and LLM load lazily
        self.listeners: list = []  # callables (session_id, event), e.g. the server's watchers

    def _load_speaker_encoder(self):
        """The speaker model, once per process (None: speakers off, or the model cannot serve)."""
        if not self.options.speakers.enabled:
            return None
        from models.speaker import SAMPLE_RATE, SpeakerEncoder
        if self.sample_rate != SAMPLE_RATE:
            log.warning("speaker tagging needs %d Hz audio, the model runs at %d Hz: off", SAMPLE_RATE,
                        self.sample_rate)
            return None
        try:
            return SpeakerEncoder(threads=1)
        except Exception as exc:  # a missing or broken model file must not stop transcription
            log.warning("speaker model unavailable (%s): speaker tagging off", exc)
            return None

    def new_speakers(self, options, session_id: str, time_offset: float, resumed: bool) -> SessionSpeakers | None:
        """A session's speaker tagging per its start options (None when off)."""
        if self.speaker_encoder is None or not options.speakers:
            return None
        changes = {k: v for k, v in (("max_speakers", options.max_speakers),
                                     ("threshold", options.speaker_threshold)) if v is not None}
        stored = self.store.get_note(session_id).segments if resumed else ()
        return SessionSpeakers(self.speaker_encoder, replace(self.options.speakers, **changes),
                               time_offset, stored)

    def new_topics(self, options, session_id: str, resumed: bool) -> SessionTopics | None:
        """A session's topic pipeline (None when the client asked for no summaries)."""
        if not options.summaries:
            return None
        first = len(self.store.get_note(session_id).topics) if resumed else 0
        return SessionTopics(self.topics, self.store, session_id, first)

    async def run_speakers(self, fn, *args):
        """Speaker embedding + clustering: its own thread, so decoding never waits for it."""
        return await asyncio.get_running_loop().run_in_executor(self._speaker_pool, fn, *args)

    def speakers_ahead(self, fn, *args) -> None:
        """Queue speaker work nobody awaits (`fn` handles its own errors) on the speaker thread,
        ahead of the tags queued after it."""
        self._speaker_pool.submit(fn, *args)

    async def start(self) -> None:
        # asyncio.to_thread (the store's commits) runs on the loop's default pool: name its threads too
        asyncio.get_running_loop().set_default_executor(named_pool("io", min(32, (os.cpu_count() or 1) + 4)))
        BlasOnOneThread.acquire()
        self._holds_blas = True
        await self.batcher.start()
        if self.mqtt:
            await self.mqtt.start()

    async def close(self) -> None:
        await self.batcher.close()
        if self.mqtt:
            await self.mqtt.close()
        self._decode_pool.shutdown(wait=True)
        self._speaker_pool.shutdown(wait=True)
        self.topics.close()
        self.store.close()
        if self._holds_blas:
            BlasOnOneThread.release()
            self._holds_blas = False

    def new_decoder(self, hotwords: tuple[str, ...] = ()) -> StreamingBeamSearch:
        """A search per stream; the LM (read-only, used from the decoder thread) is shared."""
        scorer = HotwordScorer(hotwords, self.decoder_options.hotword_boost) if hotwords else None
        return StreamingBeamSearch(self.vocabulary, self.decoder_options, self.lm, scorer)

    async def run_decoder(self, fn, *args):
        """Decoding is Python-heavy: one thread runs it, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._decode_pool, fn, *args)

    def publish(self, session_id: str, event: dict) -> None:
        if event["type"] == "error":
            self.metrics.errors.labels(event["code"]).inc()
        if self.mqtt:
            self.mqtt.publish(session_id, event)
        for listener in self.listeners:
            listener(session_id, event)

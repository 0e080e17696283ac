"""MQTT publishing of session events: every event goes to ``<prefix>/<session>/<type>`` on a broker.

Captions never wait for the broker. ``MqttPublisher.publish`` only appends to a bounded in-memory queue;
one background task owned by the publisher connects through aiomqtt (re-connecting every
``reconnect_interval`` seconds while the broker is away) and drains that queue. Finals and the other
events a listener must not miss go out with QoS 1 and are re-queued when the connection drops before the
broker acknowledged them (at-least-once); partials go out with QoS 0 and are the first to be dropped when
the queue is full.

Lifetimes are explicit: ``start()`` creates the task, ``close(timeout)`` flushes what it can within the
timeout and then awaits or cancels it. Every wait inside has a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from streaming.protocol import encode_event

log = logging.getLogger(__name__)

# Events a subscriber must not miss: published with QoS 1 and kept while the broker is away.
RELIABLE_EVENT_TYPES = frozenset({"final", "topic", "note", "speaker_share", "speaker_merge"})


@dataclass(frozen=True)
class MqttOptions:
    """Where and how to publish; built once from ``--mqtt host:port`` (see ``from_address``)."""

    host: str
    port: int = 1883
    topic_prefix: str = "steno"
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    queue_size: int = 1000  # events held while the broker is slow or away
    reconnect_interval: float = 2.0  # seconds between connection attempts
    connect_timeout: float = 5.0  # TCP connect + CONNACK
    publish_timeout: float = 5.0  # PUBACK of one QoS-1 message
    keepalive: int = 30
    max_inflight: int = 20  # messages sent before their acknowledgements are awaited
    start_timeout: float = 1.0  # start() waits this long for the first attempt's outcome
    reliable_types: frozenset[str] = field(default=RELIABLE_EVENT_TYPES)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("MQTT host is empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"MQTT port {self.port} is out of range 1-65535")
        if self.queue_size < 1:
            raise ValueError(f"MQTT queue_size must be >= 1, got {self.queue_size}")
        if self.max_inflight < 1:
            raise ValueError(f"MQTT max_inflight must be >= 1, got {self.max_inflight}")
        if any(c in self.topic_prefix for c in "+#\0") or not self.topic_prefix.strip("/"):
            raise ValueError(f"MQTT topic prefix {self.topic_prefix!r} must be non-empty, without + # or NUL")

    @classmethod
    def from_address(cls, address: str, **overrides: Any) -> MqttOptions:
        """Parse ``host:port``, ``host`` (port 1883) or ``[v6-address]:port``; anything else is a ValueError."""
        text = address.strip()
        if not text:
            raise ValueError("--mqtt needs an address like 'localhost:1883', got an empty string")
        if "://" in text or "/" in text:
            raise ValueError(f"--mqtt takes host:port, not a URL or path: {address!r}")
        port_text: str | None = None
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"--mqtt address {address!r}: expected '[v6-address]:port'")
            port_text = rest[1:] if rest else None
        elif text.count(":") == 1:
            host, port_text = text.split(":")
        elif ":" in text:
            raise ValueError(f"--mqtt address {address!r}: write an IPv6 address as '[address]:port'")
        else:
            host = text
        if not host:
            raise ValueError(f"--mqtt address {address!r} has no host")
        port = 1883
        if port_text is not None:
            if not port_text.isdigit():
                raise ValueError(f"--mqtt address {address!r}: port {port_text!r} is not a number")
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError(f"--mqtt address {address!r}: port {port} is out of range 1-65535")
        return cls(host=host, port=port, **overrides)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: str
    qos: int


def _topic_level(text: str) -> str:
    """One topic level: '/' would add levels and '+' '#' are wildcards, so they become '_'."""
    return "".join("_" if c in "/+#\0" else c for c in text) or "_"


class MqttPublisher:
    """Publishes session events to an MQTT broker without ever blocking the caller."""

    def __init__(self, options: MqttOptions) -> None:
        self._options = options
        self._prefix = options.topic_prefix.rstrip("/")
        self._queue: collections.deque[_Message] = collections.deque()
        self._wake = asyncio.Event()  # set when the queue grows or close() begins
        self._closing = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._closed = False
        self._published = 0
        self._dropped = 0
        self._reconnects = 0
        self._attempts = 0

    # -- caller side (event loop, hot path) -----------------------------------------------------------

    def publish(self, session_id: str, event: dict) -> None:
        """Queue ``event`` for ``<prefix>/<session_id>/<event['type']>``; never blocks, never raises."""
        try:
            event_type = str(event.get("type", "event"))
            payload = encode_event(event)  # the one event serializer, as on the socket
        except (TypeError, ValueError) as exc:
            log.error("MQTT: event for session %s is not JSON-serialisable, dropped: %s", session_id, exc)
            self._dropped += 1
            return
        if self._closed:
            self._dropped += 1
            return
        qos = 1 if event_type in self._options.reliable_types else 0
        message = _Message(f"{self._prefix}/{_topic_level(str(session_id))}/{_topic_level(event_type)}", payload, qos)
        if len(self._queue) >= self._options.queue_size and not self._make_room(message):
            self._dropped += 1
            return
        self._queue.append(message)
        self._wake.set()

    def _make_room(self, incoming: _Message) -> bool:
        """Drop one queued message (oldest QoS-0 first, else the oldest); False: drop ``incoming`` instead."""
        for i, queued in enumerate(self._queue):
            if queued.qos == 0:
                del self._queue[i]
                self._dropped += 1
                return True
        if incoming.qos == 0:
            return False
        self._queue.popleft()
        self._dropped += 1
        return True

    def _trim(self) -> None:
        """After re-queueing: back within ``queue_size`` by the same rule (QoS 0 first, then the oldest)."""
        excess = len(self._queue) - self._options.queue_size
        if excess <= 0:
            return
        kept = [m for m in self._queue if m.qos > 0]
        qos0 = [m for m in self._queue if m.qos == 0]
        drop0 = min(excess, len(qos0))
        doomed = {id(m) for m in qos0[:drop0]} | {id(m) for m in kept[: excess - drop0]}
        self._queue = collections.deque(m for m in self._queue if id(m) not in doomed)
        self._dropped += excess

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def stats(self) -> dict:
        return {
            "published": self._published,
            "dropped": self._dropped,
            "reconnects": self._reconnects,
            "queued": len(self._queue),
            "connected": self._connected,
        }

    # -- lifetime ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the connection task; waits at most ``start_timeout`` for the first attempt, never raises."""
        if self._task is not None:
            raise RuntimeError("MqttPublisher.start() called twice")
        self._task = asyncio.create_task(self._run(), name=f"mqtt-publisher {self._options.address}")
        with contextlib.suppress(TimeoutError):  # asyncio.timeout never loses a cancel; 3.11's wait_for can
            async with asyncio.timeout(self._options.start_timeout):
                await self._first_attempt.wait()

    async def close(self, timeout: float = 2.0) -> None:
        """Flush queued events for up to ``timeout`` seconds (only while connected), then stop the task."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            self._drop_queue("publisher never started")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._closing.set()
        self._wake.set()
        # Graceful: the task drains the queue, disconnects and returns. Leave a quarter for cancellation.
        await asyncio.wait({task}, timeout=max(0.0, timeout * 0.75))
        for _ in range(2):
            if task.done():
                break
            task.cancel()
            await asyncio.wait({task}, timeout=max(0.05, deadline - loop.time()))
        if not task.done():
            log.error("MQTT publisher task did not stop within %.1f s", timeout)
        elif not task.cancelled() and task.exception() is not None:
            log.error("MQTT publisher task failed", exc_info=task.exception())
        self._connected = False
        self._drop_queue("closed before the broker took them")

    def _drop_queue(self, why: str) -> None:
        if self._queue:
            log.warning("MQTT: %d queued events dropped: %s", len(self._queue), why)
            self._dropped += len(self._queue)
            self._queue.clear()

    # -- background task --------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, publish until the connection drops, wait ``reconnect_interval``, repeat until closing."""
        opts = self._options
        ever_connected = False
        warned = False
        while not self._closing.is_set():
            self._attempts += 1
            try:
                client = aiomqtt.Client(
                    opts.host,
                    opts.port,
                    identifier=opts.client_id,
                    username=opts.username,
                    password=opts.password,
                    timeout=opts.connect_timeout,
                    keepalive=opts.keepalive,
                    max_inflight_messages=opts.max_inflight,
                    logger=log,
                )
                client.pending_calls_threshold = opts.max_inflight + 1  # a full batch is normal, not a warning
                async with client:
                    self._connected = True
                    self._first_attempt.set()
                    if ever_connected:
                        self._reconnects += 1
                    ever_connected, warned = True, False
                    log.info("MQTT connected to %s (%d events queued)", opts.address, len(self._queue))
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                reason = f"{exc} ({exc.__cause__})" if exc.__cause__ else str(exc)
                if not warned:
                    what = "lost" if self._connected else "unreachable"
                    log.warning(
                        "MQTT broker %s %s: %s; captions continue, events will be published when it is back "
                        "(retrying every %.1f s)", opts.address, what, reason, opts.reconnect_interval,
                    )
                    warned = True
                else:
                    log.debug("MQTT broker %s still unreachable: %s", opts.address, reason)
            except Exception:  # a bug here must not end publishing for the server's lifetime
                log.exception("MQTT publisher error; reconnecting in %.1f s", opts.reconnect_interval)
            finally:
                self._connected = False
                self._first_attempt.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(opts.reconnect_interval):
                    await self._closing.wait()

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Run the queue pump beside a watcher that ends when the broker drops us; first to end wins."""
        pump = asyncio.create_task(self._pump(client), name="mqtt-pump")
        watch = asyncio.create_task(self._watch(client), name="mqtt-watch")
        try:
            done, _ = await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            await asyncio.wait({pump, watch}, timeout=self._options.publish_timeout)
        for task in (pump, watch):  # a finished task's error says why the connection ended
            if task in done and task.exception() is not None:
                raise task.exception()

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Returns only by raising MqttError when the connection drops (nothing is subscribed)."""
        async for _ in client.messages:
            pass

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Send queued messages in batches of up to ``max_inflight``; return once closing and drained."""
        while True:
            if not self._queue:
                if self._closing.is_set():
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._options.keepalive):
                        await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(self._options.max_inflight, len(self._queue)))]
            await self._send(client, batch)

    async def _send(self, client: aiomqtt.Client, batch: list[_Message]) -> None:
        """Publish a batch concurrently (paho keeps the order); unacknowledged messages go back in front."""
        tasks = [
            asyncio.create_task(client.publish(m.topic, m.payload, qos=m.qos, timeout=self._options.publish_timeout))
            for m in batch
        ]
        try:
            await asyncio.wait(tasks, timeout=self._options.publish_timeout + 1.0)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=1.0)
            failed: list[_Message] = []
            error: BaseException | None = None
            for message, task in zip(batch, tasks):
                if task.done() and not task.cancelled() and task.exception() is None:
                    self._published += 1
                    continue
                if task.done() and not task.cancelled():
                    error = error or task.exception()
                if message.qos > 0:  # partials are stale by the time we are back: let them go
                    failed.append(message)
                else:
                    self._dropped += 1
            self._queue.extendleft(reversed(failed))
            self._trim()
        if error is not None:
            raise error if isinstance(error, aiomqtt.MqttError) else aiomqtt.MqttError(str(error))

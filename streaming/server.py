"""`steno serve`: the WebSocket server (websockets on uvloop).

Lifetimes are explicit: the server owns the engine (batcher task, decoder thread, store, MQTT
task); each connection owns its session and its event-sender task, and whatever way the connection
ends (stop, eof, disconnect, idle timeout, error) the session is finished, so its last final is
persisted before the handler returns. `/v1/watch?session=ID` connections (the caption view) get
copies of a session's events. With a certificate, everything is served over TLS (wss://, https://).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from streaming.engine import Engine, EngineOptions
from streaming.http_routes import handle_http, query
from streaming.load import Pace
from streaming.protocol import (ErrorCode, ProtocolError, StartOptions, decode_audio, encode_event,
                                parse_start, parse_text_frame)
from streaming.session import Session
from streaming.vosk import vosk_reply

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    engine: EngineOptions
    host: str = "127.0.0.1"
    port: int = 8765
    vosk_port: int | None = None       # serves the Vosk protocol at "/" on this port too
    token: str | None = None
    allowed_origins: tuple[str, ...] = ()  # empty: any origin
    max_sessions: int = 64
    refuse_when_behind: bool = True    # refuse new sessions while most streams fall behind (streaming/load.py)
    max_frame_bytes: int = 1 << 20     # one binary frame (1 MiB = 32 s of 16 kHz s16le)
    idle_timeout: float = 30.0         # seconds without any message
    send_timeout: float = 10.0         # a client that accepts no event for this long is dropped
    max_backlog: int = 512             # ... and so is one that lets this many events pile up
    defaults: StartOptions = field(default_factory=StartOptions)
    certfile: Path | None = None       # PEM certificate (chain): serve TLS (wss://, https://)
    keyfile: Path | None = None        # its private key (None: in the certfile)
    max_watchers: int = 256            # /v1/watch connections

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.certfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context


class SlowConsumer(Exception):
    pass


class EventSender:
    """Sends one connection's messages in order from its own task: a client that stops reading
    stalls only this task. Partials are dropped first when the backlog grows; past the bound, or
    when one send waits longer than `send_timeout`, the client is a slow consumer."""

    def __init__(self, ws: ServerConnection, send_timeout: float, max_backlog: int = 512):
        self.ws, self.send_timeout, self.max_backlog = ws, send_timeout, max_backlog
        self.queue: deque[tuple[str, bool]] = deque()
        self.ready = asyncio.Event()
        self.closing = False
        self.failed: BaseException | None = None
        self.task = asyncio.create_task(self._run(), name="event-sender")

    def send(self, message: dict, droppable: bool = False) -> None:
        if self.failed:
            raise SlowConsumer(str(self.failed)) if isinstance(self.failed, SlowConsumer) else self.failed
        if len(self.queue) >= self.max_backlog:
            self.queue = deque(m for m in self.queue if not m[1])
            if len(self.queue) >= self.max_backlog:
                raise SlowConsumer(f"{len(self.queue)} events unread")
        self.queue.append((encode_event(message), droppable))
        self.ready.set()

    async def _run(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns normally when a send ends in
        # the same loop turn as a cancel, the cancel is lost, and a closing connection waited forever
        # (seen under an 80-stream load).
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                while self.queue:
                    text, _ = self.queue.popleft()
                    try:
                        async with asyncio.timeout(self.send_timeout):
                            await self.ws.send(text)
                    except TimeoutError:
                        raise SlowConsumer(f"no event accepted for {self.send_timeout:.0f} s") from None
                if self.closing:
                    return
        except (SlowConsumer, ConnectionClosed) as exc:
            self.failed = exc

    def replace_backlog(self, message: dict) -> None:
        """Drop every queued event and queue `message` alone: the last word to a slow consumer
        (its finals are in the note store). A sender whose send timed out gets one more try."""
        self.queue = deque([(encode_event(message), False)])
        if self.task.done():
            self.failed = None
            self.task = asyncio.create_task(self._run(), name="event-sender")
        self.ready.set()

    async def close(self, timeout: float) -> None:
        """Deliver what is queued (within `timeout`), then stop the task."""
        self.closing = True
        self.ready.set()
        if not (await asyncio.wait({self.task}, timeout=timeout))[0]:
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=1.0)


class Watchers:
    """Copies of live sessions' events for `/v1/watch?session=ID` connections (partials droppable)."""

    def __init__(self):
        self.by_session: dict[str, set[EventSender]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self.by_session.values())

    def publish(self, session_id: str, event: dict) -> None:
        for sender in tuple(self.by_session.get(session_id, ())):
            with contextlib.suppress(SlowConsumer, ConnectionClosed):
                sender.send(event, droppable=event["type"] == "partial")

    async def serve(self, ws: ServerConnection, session_id: str, live: bool, send_timeout: float) -> None:
        """Until the watcher leaves (or stops reading): first a `watching` event, then the copies."""
        sender = EventSender(ws, send_timeout)
        self.by_session.setdefault(session_id, set()).add(sender)
        try:
            sender.send({"type": "watching", "session_id": session_id, "seq": 0, "live": live})
            reader = asyncio.ensure_future(self._ignore_messages(ws))   # ends when the watcher leaves
            await asyncio.wait([reader, sender.task], return_when=asyncio.FIRST_COMPLETED)
            reader.cancel()
            if sender.failed:
                await ws.close(1008, "slow consumer")
        finally:
            watchers = self.by_session.get(session_id, set())
            watchers.discard(sender)
            if not watchers:
                self.by_session.pop(session_id, None)
            await sender.close(timeout=0)

    @staticmethod
    async def _ignore_messages(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass


class StenoServer:
    def __init__(self, options: ServerOptions):
        self.options = options
        self.engine = Engine(options.engine)
        self.live: set[Session] = set()
        self.paces: set[Pace] = set()  # one per live connection: is the server keeping up?
        self.watchers = Watchers()
        self.engine.listeners.append(self.watchers.publish)
        self.port: int | None = None  # known once listening (options.port may be 0)

    def process_request(self, connection: ServerConnection, request):
        return handle_http(self.engine, request, self.options.token, len(self.live))

    async def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path.split("?")[0]
        if path == "/v1/watch":
            return await self._watch(ws)
        vosk = path == "/vosk" or (path == "/" and ws.local_address[1] == self.options.vosk_port)
        sender = EventSender(ws, self.options.send_timeout, self.options.max_backlog)
        session: Session | None = None
        slow: SlowConsumer | None = None
        try:
            if len(self.live) >= self.options.max_sessions:
                raise ProtocolError(ErrorCode.TOO_MANY_SESSIONS,
                                    f"server is at its limit of {self.options.max_sessions} sessions; retry later",
                                    fatal=True)
            behind = sum(pace.behind() for pace in self.paces)
            if self.options.refuse_when_behind and behind > len(self.paces) / 2:
                raise ProtocolError(ErrorCode.TOO_MANY_SESSIONS,
                                    f"server is at capacity: {behind} of its {len(self.paces)} streams get less than "
                                    f"real time through; retry later", fatal=True)
            start, first = await self._start_options(ws, vosk)
            session = Session(self.engine, start.session_id or uuid.uuid4().hex[:12], start)
            self.live.add(session)
            self.engine.metrics.sessions.set(len(self.live))
            self.engine.metrics.sessions_total.inc()
            if not vosk:
                sender.send(session.ready_event())
            await self._converse(ws, session, sender, vosk, first)
        except ProtocolError as exc:
            self._send_error(sender, session, exc, vosk)
        except SlowConsumer as exc:
            slow = exc
            log.warning("session %s: slow consumer (%s): disconnecting", session.session_id if session else "-", exc)
            code, message = ErrorCode.SLOW_CONSUMER.value, f"events were not read ({exc}); the finals are in the note"
            sender.replace_backlog({"error": message, "code": code} if vosk else
                                   session.event("error", code=code, message=message))
        except ConnectionClosed as exc:
            log.info("connection ended: %s", exc)
        except Exception:
            log.exception("session %s failed", session.session_id if session else "-")
            self._send_error(sender, session, ProtocolError(ErrorCode.INTERNAL, "internal server error", True), vosk)
        finally:
            if session is not None:
                await self._finish(session, sender, vosk)
                self.live.discard(session)
                self.engine.metrics.sessions.set(len(self.live))
            await sender.close(timeout=2.0)
            if slow:
                await ws.close(1008, "slow_consumer")

    async def _watch(self, ws: ServerConnection) -> None:
        session_id = query(ws.request).get("session", "")
        problem = ("watch needs ?session=ID" if not session_id else
                   f"server is at its limit of {self.options.max_watchers} watchers"
                   if len(self.watchers) >= self.options.max_watchers else None)
        if problem:
            code = ErrorCode.BAD_MESSAGE if not session_id else ErrorCode.TOO_MANY_SESSIONS
            await ws.send(encode_event({"type": "error", "session_id": session_id or None, "seq": 0,
                                        "code": code.value, "message": problem}))
            await ws.close(1008, problem)
            return
        live = any(s.session_id == session_id for s in self.live)
        await self.watchers.serve(ws, session_id, live, self.options.send_timeout)

    async def _start_options(self, ws: ServerConnection, vosk: bool) -> tuple[StartOptions, object]:
        """Query parameters, then an optional first control message (`start` or Vosk `config`)."""
        options = parse_start(query(ws.request), self.options.defaults)
        first = await self._receive(ws)
        if isinstance(first, str):
            message = parse_text_frame(first)
            if vosk and isinstance(message.get("config"), dict):
                return parse_start(message["config"], options), None
            if message.get("type") == "start":
                return parse_start(message, options), None
        return options, first

    async def _receive(self, ws: ServerConnection):
        try:
            async with asyncio.timeout(self.options.idle_timeout):
                return await ws.recv()
        except TimeoutError:
            raise ProtocolError(ErrorCode.IDLE_TIMEOUT,
                                f"nothing received for {self.options.idle_timeout:.0f} s", fatal=True) from None

    async def _converse(self, ws, session: Session, sender: EventSender, vosk: bool, first) -> None:
        pace, message = Pace(), first
        width = session.options.bytes_per_sample * session.options.sample_rate
        self.paces.add(pace)
        try:
            while True:
                if message is None:
                    pace.waiting()
                    message = await self._receive(ws)
                pace.received(len(message) / width if isinstance(message, bytes) else 0.0)
                try:
                    if isinstance(message, bytes):
                        events = await self._audio(session, sender, message, vosk)
                        self._send_events(sender, session, events, vosk)
                    else:
                        control = parse_text_frame(message)
                        if control.get("type") == "stop" or control.get("eof"):
                            return
                        if control.get("type") == "start" or "config" in control:
                            raise ProtocolError(ErrorCode.ALREADY_STARTED, "the session has already started; "
                                                "send start/config before any audio")
                        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"unknown control message {str(control)[:80]}")
                except ProtocolError as exc:
                    if exc.fatal:
                        raise
                    self._send_error(sender, session, exc, vosk)
                message = None
        finally:
            self.paces.discard(pace)

    async def _audio(self, session: Session, sender: EventSender, frame: bytes, vosk: bool) -> list[dict]:
        if len(frame) > self.options.max_frame_bytes:
            raise ProtocolError(ErrorCode.FRAME_TOO_LARGE, f"binary frame of {len(frame)} bytes exceeds "
                                f"the limit of {self.options.max_frame_bytes}; it was dropped")
        samples, problem = decode_audio(frame, session.options.encoding)
        if problem:
            self._send_error(sender, session, problem, vosk)
        self.engine.metrics.audio_seconds.inc(len(samples) / session.options.sample_rate)
        return await session.feed(samples)

    async def _finish(self, session: Session, sender: EventSender, vosk: bool) -> None:
        """The last final goes out as soon as it is decoded; then the note closes (topic, `note`)."""
        try:
            last = await session.flush()
            self._send_quietly(sender, [vosk_reply(last, session.state.last_partial, final=True)] if vosk else last)
            closing = await session.close()
            if not vosk:  # Vosk's protocol ends with the final result
                self._send_quietly(sender, closing)
        except Exception:
            log.exception("finishing session %s failed", session.session_id)

    @staticmethod
    def _send_quietly(sender: EventSender, events: list[dict]) -> None:
        """Best effort at the end of a session: a client that left or stopped reading misses them."""
        with contextlib.suppress(SlowConsumer, ConnectionClosed):
            _send_all(sender, events)

    def _send_events(self, sender: EventSender, session: Session, events: list[dict], vosk: bool) -> None:
        """Vosk clients expect exactly one reply per audio message; ours get every event."""
        if vosk:
            sender.send(vosk_reply(events, session.state.last_partial))
            return
        _send_all(sender, events)

    def _send_error(self, sender: EventSender, session: Session | None, exc: ProtocolError, vosk: bool) -> None:
        log.info("session %s: %s: %s", session.session_id if session else "-", exc.code.value, exc.message)
        if session is not None:
            event = session.event("error", code=exc.code.value, message=exc.message)
        else:
            event = {"type": "error", "session_id": None, "seq": 0, "code": exc.code.value, "message": exc.message}
            self.engine.publish("-", event)
        with contextlib.suppress(SlowConsumer, ConnectionClosed):
            sender.send({"error": exc.message, "code": exc.code.value} if vosk else event)

    async def run(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        await self.engine.start()
        kwargs = dict(process_request=self.process_request, max_size=4 * self.options.max_frame_bytes,
                      origins=[*self.options.allowed_origins, None] if self.options.allowed_origins else None,
                      compression=None, ssl=self.options.ssl_context())
        try:
            async with contextlib.AsyncExitStack() as stack:
                server = await stack.enter_async_context(
                    serve(self.handler, self.options.host, self.options.port, **kwargs))
                if self.options.vosk_port:
                    await stack.enter_async_context(
                        serve(self.handler, self.options.host, self.options.vosk_port, **kwargs))
                self.port = next(iter(server.sockets)).getsockname()[1]
                tls = "s" if self.options.certfile else ""
                log.info("Steno listening on ws%s://%s:%d/v1/listen, page at http%s://%s:%d/ (model %s)", tls,
                         self.options.host, self.port, tls, self.options.host, self.port, self.engine.bundle.path)
                if started:
                    started.set()
                await stop.wait()
        finally:
            await self.engine.close()


def _send_all(sender: EventSender, events: list[dict]) -> None:
    """In order; partials may be dropped for a slow reader (Vosk replies have no type: kept)."""
    for event in events:
        sender.send(event, droppable=event.get("type") == "partial")


def run_server(options: ServerOptions) -> None:
    """Blocking entry point: uvloop, SIGINT/SIGTERM stop the server gracefully."""
    import uvloop

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await StenoServer(options).run(stop)

    uvloop.run(main())


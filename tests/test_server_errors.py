"""Every documented error code, over a real socket; the session survives where the docs say so."""
from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from make_tone_model import tone_speech
from server_fixtures import converse, errors, finals, s16le, server_factory, shared_server, utterances  # noqa: F401
from streaming.protocol import ErrorCode
from streaming.server import EventSender, SlowConsumer, StenoServer

AUDIO = utterances("hello world")


@pytest.mark.parametrize("garbage, code", [
    ("this is not json", "bad_json"),
    ("[1, 2, 3]", "bad_message"),
    ('{"type": "dance"}', "bad_message"),
    ('{"type": "start", "sample_rate": 8000}', "already_started"),
])
def test_bad_control_messages_leave_the_session_running(shared_server, garbage, code):
    events = asyncio.run(converse(shared_server.url(), AUDIO, before_audio=[s16le(AUDIO[:1600]), garbage]))
    assert errors(events) == [code]
    error = next(e for e in events if e["type"] == "error")
    assert error["message"] and error["session_id"] == events[0]["session_id"]
    assert finals(events) == ["hello world"]


def test_odd_byte_count_is_reported_and_the_rest_transcribed(shared_server):
    events = asyncio.run(converse(shared_server.url(), AUDIO, before_audio=[b"\x01\x02\x03"]))
    assert errors(events) == ["bad_audio"] and finals(events) == ["hello world"]


def test_nan_in_float_audio_is_reported(shared_server):
    frame = np.array([0.0, np.nan, np.inf, 0.1], "<f4").tobytes()
    events = asyncio.run(converse(shared_server.url("/v1/listen?encoding=pcm_f32le"), before_audio=[frame]))
    assert errors(events) == ["bad_audio"] and events[-1]["type"] == "note"


@pytest.mark.parametrize("start, code", [
    ({"type": "start", "sample_rate": 96000}, "unsupported_sample_rate"),
    ({"type": "start", "sample_rate": "fast"}, "unsupported_sample_rate"),
    ({"type": "start", "encoding": "mp3"}, "unsupported_encoding"),
    ({"type": "start", "hotwords": [1, 2]}, "bad_message"),
    ({"type": "start", "session_id": "../../etc/passwd"}, "bad_message"),
])
def test_bad_start_is_refused_with_its_code(shared_server, start, code):
    events = asyncio.run(converse(shared_server.url(), start=start, stop=False))
    assert [e["type"] for e in events] == ["error"] and errors(events) == [code]


def test_frame_too_large_is_dropped_and_the_session_continues(server_factory):
    server = server_factory(max_frame_bytes=4000)
    events = asyncio.run(converse(server.url(), AUDIO, frame_seconds=0.1, before_audio=[b"\0" * 4002]))
    assert errors(events) == ["frame_too_large"] and finals(events) == ["hello world"]


def test_idle_timeout_closes_but_keeps_the_last_final(server_factory):
    server = server_factory(idle_timeout=1.0)
    audio = utterances("hello world")[: -int(1.2 * 16000)]  # no endpoint yet when the client goes quiet
    events = asyncio.run(converse(server.url(), audio, stop=False))
    assert errors(events) == ["idle_timeout"]
    assert finals(events) == ["hello world"] and events[-1]["type"] == "note"


def test_too_many_sessions(server_factory):
    server = server_factory(max_sessions=1)

    async def scenario():
        async with connect(server.url()) as first:
            await first.send(s16le(AUDIO[:1600]))
            assert json.loads(await first.recv())["type"] == "ready"
            return await converse(server.url(), stop=False)  # refused before any audio is read

    events = asyncio.run(scenario())
    assert [e["type"] for e in events] == ["error"] and errors(events) == ["too_many_sessions"]


def test_a_server_that_cannot_keep_up_refuses_new_sessions_and_keeps_its_own(server_factory):
    server = server_factory()
    step = server.server.engine.encoder.step

    def slow_step(streams, chunks):  # 0.25 s per 0.16 s chunk: one real-time stream is already too many
        time.sleep(0.25)
        return step(streams, chunks)

    server.server.engine.encoder.step = slow_step
    audio = utterances("hello world", "steno captions")

    async def scenario():
        first = asyncio.create_task(converse(server.url(), audio, realtime=1.0))
        await asyncio.sleep(7.0)  # a verdict needs 5 s of the stream's pace
        refused = await converse(server.url(), stop=False)
        return await first, refused

    kept, refused = asyncio.run(scenario())
    assert errors(refused) == ["too_many_sessions"] and "capacity" in refused[0]["message"]
    assert finals(kept) == ["hello world", "steno captions"] and not errors(kept)


def test_token_is_required_when_configured(server_factory):
    server = server_factory(token="s3cret")
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(converse(server.url(), AUDIO))
    assert refused.value.response.status_code == 401
    assert finals(asyncio.run(converse(server.url() + "?token=s3cret", AUDIO))) == ["hello world"]
    headers = {"Authorization": "Bearer s3cret"}
    assert finals(asyncio.run(converse(server.url(), AUDIO, headers=headers))) == ["hello world"]


def test_foreign_browser_origin_is_refused(server_factory):
    server = server_factory(allowed_origins=("http://good.example",))

    async def attempt(origin):
        async with connect(server.url(), origin=origin) as ws:
            await ws.send(json.dumps({"type": "stop"}))
            return json.loads(await ws.recv())["type"]

    assert asyncio.run(attempt("http://good.example")) == "ready"
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(attempt("http://evil.example"))
    assert refused.value.response.status_code == 403


def test_slow_consumer_is_detected_without_blocking_the_caller():
    class NeverReads:
        async def send(self, text):
            await asyncio.sleep(3600)

    async def scenario():
        sender = EventSender(NeverReads(), send_timeout=0.2, max_backlog=8)
        sender.send({"type": "final", "n": 0})
        for i in range(20):  # partials are dropped to make room, finals are not
            sender.send({"type": "partial", "n": i}, droppable=True)
        await asyncio.sleep(0.4)
        with pytest.raises(SlowConsumer):
            sender.send({"type": "final", "n": 1})
        await sender.close(timeout=0.1)

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_close_returns_when_it_lands_as_a_send_completes():
    """On Python 3.11, asyncio.wait_for lost a cancel that arrived in the loop turn in which the send
    it guarded finished; the sender then waited for events forever and so did the connection's end
    (an 80-stream benchmark left sessions open)."""
    class Gated:
        def __init__(self):
            self.gate, self.sent = None, []

        async def send(self, text):
            self.gate = asyncio.get_running_loop().create_future()
            await self.gate
            self.sent.append(text)

    async def scenario():
        ws = Gated()
        sender = EventSender(ws, send_timeout=5)
        sender.send({"type": "final", "n": 0})
        while ws.gate is None:
            await asyncio.sleep(0)
        ws.gate.set_result(None)  # the send finishes in the turn the close cancels the sender
        closing = asyncio.ensure_future(sender.close(timeout=0))
        done, _ = await asyncio.wait({closing}, timeout=3)  # not wait_for: its cancel would end the hang
        assert closing in done, "close() hung"
        assert sender.task.done() and len(ws.sent) == 1

    asyncio.run(scenario())


def test_every_error_code_is_documented():
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text()
    for code in ErrorCode:
        assert f"`{code.value}`" in doc, code


def test_a_client_that_stops_reading_is_cut_off_as_a_slow_consumer_and_others_go_on(server_factory,
                                                                                     monkeypatch):
    """Over real sockets: one client sends audio and stops reading (a raw socket driven by websockets'
    sans-I/O protocol), so the server's sends stall. Its unread events give way to a `slow_consumer`
    error, the session ends with its finals in the note and the socket closes 1008, while a client
    beside it gets every final. Loopback's send buffers grow to megabytes, so the test shrinks the
    server's for its connections; the client reads again once /metrics has counted the error."""
    handler = StenoServer.handler

    async def small_send_buffers(self, ws):
        ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ws.transport.set_write_buffer_limits(high=4096)
        return await handler(self, ws)

    monkeypatch.setattr(StenoServer, "handler", small_send_buffers)
    server = server_factory(send_timeout=0.5, max_backlog=4)
    speech = tone_speech(" ".join(["hello world"] * 10))  # 21 s without a pause: long partials

    def slow_consumer_errors() -> float:
        with urllib.request.urlopen(server.http("/metrics")) as response:
            text = response.read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith('steno_errors_total{code="slow_consumer"}'))

    def stalled():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: it sets the window
        sock.settimeout(30)
        sock.connect(("127.0.0.1", server.port))
        protocol = ClientProtocol(parse_uri(server.url()), max_size=None)
        protocol.send_request(protocol.connect())
        sock.sendall(b"".join(protocol.data_to_send()))
        while protocol.state is State.CONNECTING:  # the handshake's response
            protocol.receive_data(sock.recv(4096))
        protocol.send_text(json.dumps({"type": "start", "session_id": "stalled"}).encode())
        for i in range(0, len(speech), 1600):
            protocol.send_binary(s16le(speech[i:i + 1600]))
            sock.sendall(b"".join(protocol.data_to_send()))
        deadline = time.monotonic() + 30
        while not slow_consumer_errors() and time.monotonic() < deadline:
            time.sleep(0.1)
        events = []
        while protocol.close_rcvd is None and (data := sock.recv(65536)):
            protocol.receive_data(data)
            events += [json.loads(f.data) for f in protocol.events_received()
                       if getattr(f, "opcode", None) is Opcode.TEXT]  # the handshake's Response is one too
            sock.sendall(b"".join(protocol.data_to_send()))
        sock.close()
        return events, protocol.close_rcvd

    async def both():
        return await asyncio.gather(asyncio.to_thread(stalled), converse(server.url(), AUDIO, realtime=2))

    (events, close), polite = asyncio.run(asyncio.wait_for(both(), 60))
    assert slow_consumer_errors() == 1
    assert errors(events) == ["slow_consumer"] and events[-1]["type"] == "note"
    assert close is not None and (close.code, close.reason) == (1008, "slow_consumer")
    assert finals(polite) == ["hello world"] and not errors(polite)
    with urllib.request.urlopen(server.http("/v1/notes/stalled.json")) as response:
        note = json.loads(response.read())
    assert note["segments"] and note["segments"][0]["text"].startswith("hello world hello world")


def test_a_server_fault_is_an_internal_error_and_the_server_goes_on(server_factory, monkeypatch):
    import streaming.server

    server = server_factory()
    real = streaming.server.decode_audio

    def broken(frame, encoding):
        if len(frame) == 3202:  # one odd-sized frame triggers the fault
            raise RuntimeError("simulated fault")
        return real(frame, encoding)

    monkeypatch.setattr(streaming.server, "decode_audio", broken)
    events = asyncio.run(converse(server.url(), AUDIO, before_audio=[b"\0" * 3202]))
    assert errors(events) == ["internal"] and events[-1]["type"] != "final"
    again = asyncio.run(converse(server.url(), AUDIO))
    assert finals(again) == ["hello world"] and not errors(again)

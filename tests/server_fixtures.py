"""A real Steno server on a loopback port (in a thread, or a subprocess), tone-speech audio for it,
and a small WebSocket client. The tone model reads letters played as tones (make_tone_model.py)."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect

from make_tone_model import SAMPLE_RATE, tone_speech
from streaming.engine import EngineOptions
from streaming.server import ServerOptions, StenoServer
from streaming.summaries import SummaryOptions

TONE_MODEL = Path(__file__).parent / "data" / "tone_model"
PAUSE = np.zeros(int(1.6 * SAMPLE_RATE), np.float32)  # longer than the 1.0 s endpoint rule


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until a server subprocess accepts connections on `port` (fails at once if it exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError("server did not listen")


def utterances(*texts: str) -> np.ndarray:
    """Tone speech for each text, separated by pauses that end an utterance."""
    return np.concatenate([np.concatenate([tone_speech(t), PAUSE]) for t in texts])


def s16le(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


class RunningServer:
    def __init__(self, options: ServerOptions):
        self.server = StenoServer(options)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        started = threading.Event()

        async def main():
            self.stop_event = asyncio.Event()
            ready = asyncio.Event()
            task = asyncio.create_task(self.server.run(self.stop_event, ready))
            await ready.wait()
            started.set()
            await task

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()
        if not started.wait(30):
            raise RuntimeError("server did not start")
        self.port = self.server.port

    def url(self, path: str = "/v1/listen") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


def server_options(tmp_path: Path, **changes) -> ServerOptions:
    engine = EngineOptions(model=TONE_MODEL, db=tmp_path / "notes.sqlite3", threads=1,
                           summaries=SummaryOptions(backend="none"))  # extractive: no LLM in server tests
    engine = dataclasses.replace(engine, **changes.pop("engine", {}))
    return ServerOptions(engine=engine, host="127.0.0.1", port=0, **changes)


@pytest.fixture
def server_factory(tmp_path):
    servers: list[RunningServer] = []

    def make(**changes) -> RunningServer:
        servers.append(RunningServer(server_options(tmp_path, **changes)))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    server = RunningServer(server_options(tmp_path_factory.mktemp("server")))
    yield server
    server.close()


async def converse(url: str, audio: np.ndarray | None = None, start: dict | None = None,
                   frame_seconds: float = 0.1, realtime: float = 0.0, before_audio=(), after_audio=(),
                   stop: bool = True, headers=None) -> list[dict]:
    """One client session: optional start message, audio frames (at `realtime` x speed, 0 = fast),
    stop; returns every event received until the server closes."""
    events: list[dict] = []
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        async def receive():
            async for message in ws:
                events.append(json.loads(message))

        receiver = asyncio.create_task(receive())
        if start is not None:
            await ws.send(json.dumps(start))
        for message in before_audio:
            await ws.send(message)
        if audio is not None:
            rate = (start or {}).get("sample_rate", SAMPLE_RATE)
            step = int(rate * frame_seconds)
            for i in range(0, len(audio), step):
                await ws.send(s16le(audio[i:i + step]))
                if realtime:
                    await asyncio.sleep(frame_seconds / realtime)
        for message in after_audio:
            await ws.send(message)
        if stop:
            await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(receiver, 60)
    return events


def finals(events: list[dict]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "final"]


def errors(events: list[dict]) -> list[str]:
    return [e["code"] for e in events if e["type"] == "error"]

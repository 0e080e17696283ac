"""`steno transcribe FILE`: the server's pipeline in-process, without a socket."""
from __future__ import annotations

from pathlib import Path

from streaming.audio import read_audio
from streaming.engine import Engine, EngineOptions
from streaming.protocol import StartOptions
from streaming.session import Session

FEED_SECONDS = 0.1  # pieces of the file fed to the session, as a client's frames would be


async def transcribe_file(options: EngineOptions, path: str | Path, hotwords: tuple[str, ...] = (),
                          session_id: str | None = None) -> list[dict]:
    """Every event the socket would send for this file, in order."""
    samples, rate = read_audio(path)
    engine = Engine(options)
    await engine.start()
    try:
        start = StartOptions(sample_rate=rate, encoding="pcm_f32le", hotwords=hotwords)
        session = Session(engine, session_id or Path(path).stem, start)
        events, step = [session.ready_event()], max(1, int(rate * FEED_SECONDS))
        for begin in range(0, len(samples), step):
            events += await session.feed(samples[begin:begin + step])
        events += await session.flush()
        return events + await session.close()
    finally:
        await engine.close()

"""Is the server keeping up? A connection's pace over the last few seconds.

Past its capacity a batching server does not fail: every stream's captions fall behind together,
and the backlog waits in socket buffers, out of the server's sight. What the server does see is
each connection's pace: a real-time client the server keeps up with leaves it waiting for the
next frame part of the time; one it cannot keep up with always has a frame ready and yet gets
less than real time through. A fast client (a file sent at full speed) also never waits, but gets
more than real time through while the server has room. So a connection is *behind* when, over the
last `window` seconds, it waited for frames under `idle_below` of the time and got under
`speed_below` seconds of audio through per second; the server refuses new sessions while most
of its connections are behind (`ServerOptions.refuse_when_behind`).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class PaceOptions:
    window: float = 5.0         # seconds of history a verdict needs
    idle_below: float = 0.05    # share of the window spent waiting for frames
    speed_below: float = 0.95   # audio seconds through per wall second


class Pace:
    def __init__(self, options: PaceOptions = PaceOptions(), clock=time.monotonic):
        self.options, self.clock = options, clock
        self.waited = self.audio = 0.0
        self._waiting_since: float | None = None
        self._marks: deque[tuple[float, float, float]] = deque([(clock(), 0.0, 0.0)])  # (time, waited, audio)

    def waiting(self) -> None:
        """The connection waits for its next message."""
        self._waiting_since = self.clock()

    def received(self, audio: float) -> None:
        """It arrived, carrying `audio` seconds."""
        now = self.clock()
        if self._waiting_since is not None:
            self.waited += now - self._waiting_since
            self._waiting_since = None
        self.audio += audio
        if now - self._marks[-1][0] >= 0.5:  # a mark per half second is history enough
            self._marks.append((now, self.waited, self.audio))
        while len(self._marks) > 1 and now - self._marks[1][0] >= self.options.window:
            self._marks.popleft()

    def behind(self) -> bool:
        now = self.clock()
        then, waited, audio = self._marks[0]
        span = now - then
        if span < self.options.window:
            return False
        waited_now = self.waited + (now - self._waiting_since if self._waiting_since is not None else 0.0)
        idle, speed = (waited_now - waited) / span, (self.audio - audio) / span
        return idle < self.options.idle_below and speed < self.options.speed_below

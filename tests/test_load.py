"""Pace: a connection is behind when it never waits for frames and still gets less than real time."""
from __future__ import annotations

from streaming.load import Pace


def run(pace: Pace, now: list[float], seconds: float, frame: float, wait: float, work: float) -> None:
    """Messages of `frame` seconds of audio, each waited for `wait` s and processed in `work` s."""
    end = now[0] + seconds
    while now[0] < end:
        pace.waiting()
        now[0] += wait
        pace.received(frame)
        now[0] += work


def test_behind_only_when_never_idle_and_slower_than_real_time():
    now = [0.0]
    pace = Pace(clock=lambda: now[0])
    run(pace, now, 3, frame=0.1, wait=0.0, work=0.2)
    assert not pace.behind()                          # too little history for a verdict
    run(pace, now, 6, frame=0.1, wait=0.08, work=0.02)
    assert not pace.behind()                          # real time, kept up with: waits most of the time
    run(pace, now, 6, frame=0.1, wait=0.0, work=0.15)
    assert pace.behind()                              # frames always ready, 0.67x real time through
    run(pace, now, 6, frame=0.1, wait=0.0, work=0.01)
    assert not pace.behind()                          # a file sent at full speed: 10x real time
    pace.waiting()
    now[0] += 10                                      # the client went quiet: waiting is not falling behind
    assert not pace.behind()

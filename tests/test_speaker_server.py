"""Speakers over a real socket: finals carry a label, `speaker_share` follows each final, the note
stores and exports the labels; per-session options switch tagging off or are checked.

The tone fixture model reads tones, not voices, so this checks the wiring; accuracy on speech is
measured by tests/test_speaker_model.py and bench/speaker_eval.py."""
from __future__ import annotations

import asyncio
import re
import urllib.request

from server_fixtures import converse, errors, finals, server_factory, shared_server, utterances  # noqa: F401


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def embedded_ahead(server) -> float:
    metrics = get(server.http("/metrics"))
    return sum(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith("steno_speaker_embedded_ahead_total"))


def test_finals_carry_speakers_and_share_events_follow(shared_server):
    ahead_before = embedded_ahead(shared_server)
    events = asyncio.run(converse(shared_server.url(), utterances("hello world", "speech model", "notes")))
    assert finals(events) == ["hello world", "speech model", "notes"]
    kinds = [e["type"] for e in events]
    final_events = [e for e in events if e["type"] == "final"]
    assert all(re.fullmatch(r"Speaker \d+", e["speaker"]) for e in final_events)
    shares = [e for e in events if e["type"] == "speaker_share"]
    assert len(shares) == 3
    for i, final in enumerate(final_events):   # each share event comes right after its final
        assert kinds[events.index(final) + 1] == "speaker_share"
    last = shares[-1]
    assert abs(sum(s["percent"] for s in last["speakers"]) - 100) < 0.2
    assert abs(last["total"] - sum(e["end"] - e["start"] for e in final_events)) < 0.01
    session = events[0]["session_id"]
    note = get(shared_server.http(f"/v1/notes/{session}.md"))
    assert f"**{final_events[0]['speaker']}**" in note and "Speakers:" in note
    assert f"[{final_events[0]['speaker']}]" in get(shared_server.http(f"/v1/notes/{session}.srt"))
    # the pause before each endpoint let the speaker thread embed the span before the final came
    assert embedded_ahead(shared_server) - ahead_before == len(final_events)


def test_speakers_off_and_bad_speaker_options(shared_server):
    events = asyncio.run(converse(shared_server.url(), utterances("hello world"),
                                  start={"type": "start", "speakers": False}))
    assert [e["speaker"] for e in events if e["type"] == "final"] == [None]
    assert "speaker_share" not in [e["type"] for e in events]
    events = asyncio.run(converse(shared_server.url("/v1/listen?max_speakers=2&speaker_threshold=0.3"),
                                  utterances("hello world")))
    assert [e["speaker"] for e in events if e["type"] == "final"] == ["Speaker 1"]
    events = asyncio.run(converse(shared_server.url(), utterances("hello"),
                                  start={"type": "start", "max_speakers": 0}))
    assert errors(events) == ["bad_message"]

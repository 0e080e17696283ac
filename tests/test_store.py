"""The note store: what goes in comes back, sessions resume, and nothing committed is ever lost."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from streaming.store import SCHEMA_VERSION, NoteStore, Segment, Word

REPO = Path(__file__).resolve().parents[1]


def segment(i: int, speaker: str | None = None) -> Segment:
    t = 2.0 * i
    words = (Word("segment", t, t + 0.4, 0.9), Word(f"number{i}", t + 0.5, t + 1.5, 0.75))
    return Segment(i, t, t + 1.5, f"segment number{i}", words, speaker)


@pytest.fixture
def store(tmp_path):
    with NoteStore(tmp_path / "notes" / "steno.db") as s:
        yield s


def test_file_is_wal_with_full_sync_and_versioned_schema(tmp_path):
    path = tmp_path / "deep" / "dir" / "steno.db"
    with NoteStore(path) as s:
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2      # FULL
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")} \
        >= {"sessions", "segments", "topics"}


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "steno.db"
    NoteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        NoteStore(path)


def test_round_trip_segments_words_speakers_topics(store):
    info = store.open_session("lecture-1", {"title": "Thermodynamics", "language": "en"})
    assert (info.session_id, info.n_segments, info.duration, info.closed) == ("lecture-1", 0, 0.0, False)
    for i in range(3):
        store.add_segment("lecture-1", segment(i, speaker="Speaker 1" if i == 0 else None))
    store.set_speaker("lecture-1", 2, "Speaker 2")
    store.add_topic("lecture-1", {"index": 0, "start_segment": 0, "end_segment": 2, "start": 0.0,
                                  "end": 5.5, "title": "Entropy", "bullets": ["it grows"]})

    note = store.get_note("lecture-1")
    assert note.segments == (segment(0, "Speaker 1"), segment(1), segment(2, "Speaker 2"))
    assert note.segments[1].words[1] == Word("number1", 2.5, 3.5, 0.75)
    assert note.topics == ({"index": 0, "start_segment": 0, "end_segment": 2, "start": 0.0,
                            "end": 5.5, "title": "Entropy", "bullets": ["it grows"]},)
    assert note.info.meta == {"title": "Thermodynamics", "language": "en"}
    assert (note.info.n_segments, note.info.duration) == (3, 5.5)


def test_topic_with_same_index_is_replaced_when_its_summary_arrives(store):
    store.open_session("s")
    store.add_topic("s", {"start_segment": 0, "end_segment": 4, "start": 0, "end": 9})
    store.add_topic("s", {"start_segment": 5, "end_segment": 7, "start": 9, "end": 14})
    store.add_topic("s", {"index": 0, "start_segment": 0, "end_segment": 4, "start": 0, "end": 9,
                          "title": "Intro", "bullets": ["a", "b"], "model": "gemma"})
    topics = store.get_note("s").topics
    assert [t["index"] for t in topics] == [0, 1]
    assert topics[0]["title"] == "Intro" and topics[0]["bullets"] == ["a", "b"]
    assert topics[0]["model"] == "gemma"             # extra keys are kept
    assert topics[1]["title"] is None and topics[1]["bullets"] == []


def test_resume_reports_next_index_and_where_the_timeline_continues(tmp_path):
    path = tmp_path / "steno.db"
    with NoteStore(path) as s:
        s.open_session("meeting", {"title": "Weekly"})
        for i in range(4):
            s.add_segment("meeting", segment(i))
        s.close_session("meeting")
        assert s.get_note("meeting").info.closed
    with NoteStore(path) as s:
        info = s.open_session("meeting", {"room": "B"})
        assert (info.n_segments, info.duration, info.closed) == (4, 7.5, False)
        assert info.meta == {"title": "Weekly", "room": "B"}
        s.add_segment("meeting", segment(info.n_segments))
        assert [seg.index for seg in s.get_note("meeting").segments] == [0, 1, 2, 3, 4]


def test_duplicate_index_is_rejected_and_the_first_kept(store):
    store.open_session("s")
    store.add_segment("s", segment(0))
    with pytest.raises(ValueError, match="already has segment 0"):
        store.add_segment("s", Segment(0, 9.0, 10.0, "impostor"))
    assert store.get_note("s").segments == (segment(0),)
    store.add_segment("s", segment(1))                   # the store still works after the error


def test_unknown_sessions_and_segments(store):
    assert store.get_note("nobody") is None
    with pytest.raises(KeyError):
        store.add_segment("nobody", segment(0))
    with pytest.raises(KeyError):
        store.close_session("nobody")
    store.open_session("s")
    with pytest.raises(KeyError):
        store.set_speaker("s", 7, "Speaker 1")


@pytest.mark.parametrize("bad", ["", "../etc/passwd", "a b", "x" * 129, "-lead"])
def test_invalid_session_ids_are_refused(store, bad):
    with pytest.raises(ValueError, match="invalid session id"):
        store.open_session(bad)


def test_list_sessions_most_recent_first(store):
    for name in ("a", "b", "c"):
        store.open_session(name)
    store.add_segment("a", segment(0))
    listed = store.list_sessions()
    assert [i.session_id for i in listed] == ["a", "c", "b"]
    assert listed[0].n_segments == 1 and listed[0].duration == 1.5
    assert len(store.list_sessions(limit=2)) == 2


def test_memory_store_for_tests():
    with NoteStore(":memory:") as s:
        s.open_session("m")
        s.add_segment("m", segment(0))
        assert s.get_note("m").info.n_segments == 1


WRITER = """
import sys
from streaming.store import NoteStore, Segment, Word
store = NoteStore(sys.argv[1])
store.open_session("lecture")
for i in range(100000):
    t = 2.0 * i
    words = (Word("segment", t, t + 0.4, 0.9), Word(f"number{i}", t + 0.5, t + 1.5, 0.75))
    store.add_segment("lecture", Segment(i, t, t + 1.5, f"segment number{i}", words))
    print(i, flush=True)
"""


def test_kill_9_loses_no_committed_segment(tmp_path):
    path = tmp_path / "steno.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acknowledged = -1
    try:
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged + 1 >= 30:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert acknowledged + 1 == 30, proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL
    assert Path(f"{path}-wal").exists()               # no clean shutdown: recovery from the log

    with NoteStore(path) as s:
        assert s._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        note = s.get_note("lecture")
        assert note.info.n_segments >= 30
        assert note.segments == tuple(segment(i) for i in range(note.info.n_segments))


def test_concurrent_writers_and_readers_lose_nothing(tmp_path):
    path = tmp_path / "steno.db"
    store = NoteStore(path)
    for name in ("shared", "own-0", "own-1"):
        store.open_session(name)
    errors = []

    def writer(k: int) -> None:
        try:
            for i in range(k, 60, 3):                  # interleaved indices into one session
                store.add_segment("shared", segment(i))
                if k < 2:
                    store.add_segment(f"own-{k}", segment(i // 3))
                if i % 2:
                    store.set_speaker("shared", i, f"Speaker {k}")
        except Exception as e:                         # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        try:
            for _ in range(40):
                note = store.get_note("shared")
                assert len(note.segments) == note.info.n_segments
                store.list_sessions()
        except Exception as e:                         # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store.close()

    with NoteStore(path) as s:
        shared = s.get_note("shared").segments
        assert [seg.index for seg in shared] == list(range(60))
        assert all(seg.text == f"segment number{seg.index}" for seg in shared)
        assert all(seg.speaker == (f"Speaker {seg.index % 3}" if seg.index % 2 else None)
                   for seg in shared)
        for k in range(2):
            assert s.get_note(f"own-{k}").info.n_segments == 20

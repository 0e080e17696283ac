"""Durable notes: every final segment, speaker label and topic is written to SQLite as it happens.

One `NoteStore` wraps one SQLite file (or ":memory:" for tests). Every write is its own
transaction, committed before the call returns, so the server can acknowledge a final segment
to the client knowing it is on disk.

Durability
----------
* ``journal_mode=WAL``: a commit appends to the write-ahead log; readers never block the writer,
  and a crashed writer leaves a log that the next open replays.
* ``synchronous=FULL``: the WAL is fsync'ed at every commit. With ``NORMAL`` a ``kill -9`` of the
  server already loses nothing (the committed bytes sit in the OS page cache, which outlives the
  process), but a power cut or kernel crash can drop the last commits. Notes of a lecture or a
  meeting must survive both, and the price is one fsync per *final* segment (one every few seconds
  per session), which is negligible beside the acoustic model. ``fullfsync`` is also turned on so
  that macOS flushes the drive cache; on Linux it is a no-op.
* The schema is versioned with ``PRAGMA user_version``; `_MIGRATIONS[v]` brings a file from
  version v-1 to v, each in one transaction, so later issues can add columns or tables.

Thread safety: one connection (``check_same_thread=False``) behind a lock; each public method
holds the lock for its whole transaction, so calls from a worker thread and from the event loop
interleave safely. Other processes may open the same file (``busy_timeout`` waits for them).
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

SCHEMA_VERSION = 1
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
TOPIC_COLUMNS = ("index", "start_segment", "end_segment", "start", "end", "title", "bullets")

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            created    REAL NOT NULL,
            updated    REAL NOT NULL,
            closed     INTEGER NOT NULL DEFAULT 0,
            meta       TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX sessions_by_updated ON sessions(updated)",
        # words: JSON [[word, start, end, confidence], ...], written with its segment atomically
        """CREATE TABLE segments (
            session_id TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
            idx        INTEGER NOT NULL CHECK (idx >= 0),
            start_s    REAL NOT NULL,
            end_s      REAL NOT NULL,
            text       TEXT NOT NULL,
            words      TEXT NOT NULL DEFAULT '[]',
            speaker    TEXT,
            PRIMARY KEY (session_id, idx)
        ) WITHOUT ROWID""",
        # bullets: JSON list of strings; extra: JSON object with any further keys of the topic
        """CREATE TABLE topics (
            session_id    TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
            idx           INTEGER NOT NULL CHECK (idx >= 0),
            start_segment INTEGER,
            end_segment   INTEGER,
            start_s       REAL,
            end_s         REAL,
            title         TEXT,
            bullets       TEXT NOT NULL DEFAULT '[]',
            extra         TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (session_id, idx)
        ) WITHOUT ROWID""",
    ),
}


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Segment:
    index: int                 # 0, 1, 2 ... per session, in order
    start: float               # seconds from session start
    end: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str | None = None


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    created: float             # unix time
    updated: float             # unix time of the last write
    closed: bool
    meta: dict = field(hash=False)
    n_segments: int            # number of stored segments = the next index when resuming
    duration: float            # end of the last segment, or 0


@dataclass(frozen=True)
class Note:
    info: SessionInfo
    segments: tuple[Segment, ...]
    topics: tuple[dict, ...] = ()


_INFO_SQL = """
    SELECT s.session_id, s.created, s.updated, s.closed, s.meta,
           (SELECT COUNT(*) FROM segments g WHERE g.session_id = s.session_id),
           (SELECT COALESCE(MAX(g.end_s), 0.0) FROM segments g WHERE g.session_id = s.session_id)
    FROM sessions s"""


class NoteStore:
    """Sessions, their final segments (with words and speakers) and topics, in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: no implicit transactions; every write says BEGIN/COMMIT itself.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=10.0)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA fullfsync = ON")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    # ------------------------------------------------------------------ plumbing

    def _migrate(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: schema version {version} is newer than this "
                                   f"Steno understands ({SCHEMA_VERSION})")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction under the lock; committed (and synced) on normal exit."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction under the lock: a consistent snapshot across several queries."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    @staticmethod
    def _info(db: sqlite3.Connection, session_id: str) -> SessionInfo | None:
        row = db.execute(_INFO_SQL + " WHERE s.session_id = ?", (session_id,)).fetchone()
        return _row_to_info(row) if row else None

    @staticmethod
    def _require(db: sqlite3.Connection, session_id: str) -> None:
        if db.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone() is None:
            raise KeyError(f"unknown session {session_id!r}")

    @staticmethod
    def _touch(db: sqlite3.Connection, session_id: str) -> None:
        db.execute("UPDATE sessions SET updated = ? WHERE session_id = ?", (time.time(), session_id))

    # ------------------------------------------------------------------ writes

    def open_session(self, session_id: str, meta: dict | None = None) -> SessionInfo:
        """Create a session, or resume an existing one (reopening it if it was closed).

        On resume, `meta` is merged into the stored meta (new keys win). The returned info's
        `n_segments` is the next segment index and `duration` is where the timeline continues.
        Session ids are 1-128 characters of [A-Za-z0-9._:-], starting with a letter or digit
        (they appear in URLs and file names); anything else is a ValueError.
        """
        if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
            raise ValueError(f"invalid session id {session_id!r}: use 1-128 characters of "
                             "letters, digits and . _ : - (starting with a letter or digit)")
        now = time.time()
        with self._write() as db:
            row = db.execute("SELECT meta FROM sessions WHERE session_id = ?",
                             (session_id,)).fetchone()
            merged = {**(json.loads(row[0]) if row else {}), **(meta or {})}
            meta_json = json.dumps(merged, ensure_ascii=False, allow_nan=False)
            if row is None:
                db.execute("INSERT INTO sessions (session_id, created, updated, closed, meta) "
                           "VALUES (?, ?, ?, 0, ?)", (session_id, now, now, meta_json))
            else:
                db.execute("UPDATE sessions SET updated = ?, closed = 0, meta = ? "
                           "WHERE session_id = ?", (now, meta_json, session_id))
            return self._info(db, session_id)

    def add_segment(self, session_id: str, segment: Segment) -> None:
        """Store one final segment; it is committed and synced before this returns.

        Unknown session -> KeyError; an index already stored for the session -> ValueError.
        """
        if isinstance(segment.index, bool) or not isinstance(segment.index, int) or segment.index < 0:
            raise ValueError(f"segment index must be a non-negative int, got {segment.index!r}")
        words = json.dumps([[w.word, w.start, w.end, w.confidence] for w in segment.words],
                           ensure_ascii=False, allow_nan=False)
        with self._write() as db:
            self._require(db, session_id)
            try:
                db.execute("INSERT INTO segments (session_id, idx, start_s, end_s, text, words, "
                           "speaker) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (session_id, segment.index, float(segment.start), float(segment.end),
                            segment.text, words, segment.speaker))
            except sqlite3.IntegrityError as e:
                raise ValueError(f"session {session_id!r} already has segment "
                                 f"{segment.index}") from e
            self._touch(db, session_id)

    def set_speaker(self, session_id: str, index: int, speaker: str) -> None:
        """Label (or relabel) one stored segment; no such segment -> KeyError."""
        with self._write() as db:
            cur = db.execute("UPDATE segments SET speaker = ? WHERE session_id = ? AND idx = ?",
                             (speaker, session_id, index))
            if cur.rowcount == 0:
                raise KeyError(f"session {session_id!r} has no segment {index}")
            self._touch(db, session_id)

    def add_topic(self, session_id: str, topic: dict) -> None:
        """Store a topic, or replace the one with the same "index" (a summary arriving later).

        Keys: index (default: the next one), start_segment, end_segment, start, end, title,
        bullets (list of str); any other JSON-serialisable keys are kept and returned as well.
        """
        extra = {k: v for k, v in topic.items() if k not in TOPIC_COLUMNS}
        bullets = topic.get("bullets") or []
        if isinstance(bullets, str):
            bullets = [bullets]
        with self._write() as db:
            self._require(db, session_id)
            index = topic.get("index")
            if index is None:
                index = db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM topics "
                                   "WHERE session_id = ?", (session_id,)).fetchone()[0]
            db.execute("INSERT OR REPLACE INTO topics (session_id, idx, start_segment, "
                       "end_segment, start_s, end_s, title, bullets, extra) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (session_id, int(index), topic.get("start_segment"),
                        topic.get("end_segment"), topic.get("start"), topic.get("end"),
                        topic.get("title"), json.dumps([str(b) for b in bullets],
                                                       ensure_ascii=False),
                        json.dumps(extra, ensure_ascii=False, allow_nan=False)))
            self._touch(db, session_id)

    def close_session(self, session_id: str) -> None:
        """Mark a session closed (informational: open_session resumes it); unknown -> KeyError."""
        with self._write() as db:
            cur = db.execute("UPDATE sessions SET closed = 1, updated = ? WHERE session_id = ?",
                             (time.time(), session_id))
            if cur.rowcount == 0:
                raise KeyError(f"unknown session {session_id!r}")

    # ------------------------------------------------------------------ reads

    def get_note(self, session_id: str) -> Note | None:
        """The whole session (segments in index order, topics in index order), or None."""
        with self._read() as db:
            info = self._info(db, session_id)
            if info is None:
                return None
            segments = tuple(
                Segment(idx, start, end, text,
                        tuple(Word(w, ws, we, c) for w, ws, we, c in json.loads(words)), speaker)
                for idx, start, end, text, words, speaker in db.execute(
                    "SELECT idx, start_s, end_s, text, words, speaker FROM segments "
                    "WHERE session_id = ? ORDER BY idx", (session_id,)))
            topics = tuple(
                {"index": idx, "start_segment": s_seg, "end_segment": e_seg, "start": start,
                 "end": end, "title": title, "bullets": json.loads(bullets), **json.loads(extra)}
                for idx, s_seg, e_seg, start, end, title, bullets, extra in db.execute(
                    "SELECT idx, start_segment, end_segment, start_s, end_s, title, bullets, "
                    "extra FROM topics WHERE session_id = ? ORDER BY idx", (session_id,)))
        return Note(info, segments, topics)

    def list_sessions(self, limit: int = 100) -> list[SessionInfo]:
        """The most recently updated sessions first."""
        with self._read() as db:
            rows = db.execute(_INFO_SQL + " ORDER BY s.updated DESC LIMIT ?",
                              (int(limit),)).fetchall()
        return [_row_to_info(row) for row in rows]

    def close(self) -> None:
        """Close the connection (checkpoints the WAL); further calls raise; idempotent."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> NoteStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _row_to_info(row: tuple) -> SessionInfo:
    session_id, created, updated, closed, meta, n_segments, duration = row
    return SessionInfo(session_id, created, updated, bool(closed), json.loads(meta),
                       n_segments, float(duration))

"""The wire protocol of `/v1/listen`: start options, error codes, audio decoding, event encoding.

docs/protocol.md is the user-facing description; every code in `ErrorCode` is listed there.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

ENCODINGS = {"pcm_s16le": 2, "pcm_f32le": 4}  # bytes per sample
ENCODING_ALIASES = {"s16le": "pcm_s16le", "f32le": "pcm_f32le", "pcm_s16": "pcm_s16le", "float32": "pcm_f32le"}
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000
MAX_HOTWORDS = 200
MAX_SPEAKERS = 32


class ErrorCode(str, Enum):
    BAD_JSON = "bad_json"                      # a text frame that is not JSON
    BAD_MESSAGE = "bad_message"                # JSON of an unknown type or with bad fields
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    UNSUPPORTED_SAMPLE_RATE = "unsupported_sample_rate"
    BAD_AUDIO = "bad_audio"                    # byte count not a whole number of samples, NaN/inf
    FRAME_TOO_LARGE = "frame_too_large"        # one binary frame over --max-frame-bytes
    ALREADY_STARTED = "already_started"        # `start` after audio or a previous `start`
    IDLE_TIMEOUT = "idle_timeout"              # nothing received for --idle-timeout seconds
    TOO_MANY_SESSIONS = "too_many_sessions"    # --max-sessions reached
    SLOW_CONSUMER = "slow_consumer"            # the client stopped reading its events
    INTERNAL = "internal"                      # a server fault; the session is closed


class ProtocolError(Exception):
    """Bad client input; becomes an `error` event. `fatal` ones close the session."""

    def __init__(self, code: ErrorCode, message: str, fatal: bool = False):
        super().__init__(message)
        self.code, self.message, self.fatal = code, message, fatal


@dataclass(frozen=True)
class StartOptions:
    sample_rate: int = 16000
    encoding: str = "pcm_s16le"
    session_id: str | None = None
    hotwords: tuple[str, ...] = ()
    speakers: bool = True
    max_speakers: int | None = None         # None: the server's default (8)
    speaker_threshold: float | None = None  # cosine distance that opens a new speaker; None: default
    summaries: bool = True
    extra: dict = field(default_factory=dict)  # client fields we keep in the note's metadata

    @property
    def bytes_per_sample(self) -> int:
        return ENCODINGS[self.encoding]


def parse_encoding(value) -> str:
    encoding = ENCODING_ALIASES.get(str(value).lower(), str(value).lower())
    if encoding not in ENCODINGS:
        raise ProtocolError(ErrorCode.UNSUPPORTED_ENCODING,
                            f"encoding {value!r} is not supported; use one of {sorted(ENCODINGS)}")
    return encoding


def parse_sample_rate(value) -> int:
    try:
        rate = int(value)
    except (TypeError, ValueError):
        rate = -1
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE or str(value).strip() not in (str(rate), f"{rate}.0"):
        raise ProtocolError(ErrorCode.UNSUPPORTED_SAMPLE_RATE,
                            f"sample_rate {value!r} is not supported; use an integer from "
                            f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
    return rate


def parse_start(message: dict, defaults: StartOptions) -> StartOptions:
    """A `start` message (or URL query parameters) over the defaults."""
    known = {"type", "sample_rate", "encoding", "session_id", "hotwords", "speakers", "summaries",
             "max_speakers", "speaker_threshold"}
    hotwords = message.get("hotwords", defaults.hotwords)
    if isinstance(hotwords, str):
        hotwords = [h for h in hotwords.split(",") if h.strip()]
    if not isinstance(hotwords, (list, tuple)) or not all(isinstance(h, str) for h in hotwords) \
            or len(hotwords) > MAX_HOTWORDS:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"hotwords must be a list of at most {MAX_HOTWORDS} strings")
    session_id = message.get("session_id", defaults.session_id)
    if session_id is not None and not isinstance(session_id, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "session_id must be a string")  # its form: NoteStore
    return StartOptions(
        sample_rate=parse_sample_rate(message.get("sample_rate", defaults.sample_rate)),
        encoding=parse_encoding(message.get("encoding", defaults.encoding)),
        session_id=session_id,
        hotwords=tuple(h.strip() for h in hotwords),
        speakers=_flag(message.get("speakers", defaults.speakers)),
        max_speakers=_number(message, "max_speakers", defaults.max_speakers, int, 1, MAX_SPEAKERS),
        speaker_threshold=_number(message, "speaker_threshold", defaults.speaker_threshold, float, 0.01, 1.99),
        summaries=_flag(message.get("summaries", defaults.summaries)),
        extra={k: v for k, v in message.items() if k not in known},
    )


def _number(message: dict, key: str, default, kind, low, high):
    """An optional number field within [low, high] (query strings give text), else bad_message."""
    value = message.get(key, default)
    if value is None:
        return None
    try:
        number = kind(value) if not isinstance(value, bool) else None
        if kind is int and float(value) != number:
            number = None
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{key} must be a number from {low} to {high}, got {value!r}")
    return number


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.lower() not in ("0", "false", "no", "off")
    return bool(value)


def parse_text_frame(text: str) -> dict:
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError(ErrorCode.BAD_JSON, f"text frame is not JSON: {text[:80]!r}") from None
    if not isinstance(message, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a control message must be a JSON object")
    return message


def decode_audio(frame: bytes, encoding: str) -> tuple[np.ndarray, ProtocolError | None]:
    """PCM bytes -> float32 in [-1, 1]. A trailing partial sample is dropped and reported."""
    width = ENCODINGS[encoding]
    usable = len(frame) - len(frame) % width
    problem = None
    if usable != len(frame):
        problem = ProtocolError(ErrorCode.BAD_AUDIO, f"binary frame of {len(frame)} bytes is not a whole "
                                f"number of {width}-byte {encoding} samples; the last "
                                f"{len(frame) - usable} byte(s) were dropped")
    if encoding == "pcm_s16le":
        samples = np.frombuffer(frame[:usable], dtype="<i2").astype(np.float32) / 32768.0
    else:
        samples = np.frombuffer(frame[:usable], dtype="<f4").astype(np.float32)
        bad = ~np.isfinite(samples)
        if bad.any():
            samples = np.where(bad, 0.0, samples).astype(np.float32)
            problem = ProtocolError(ErrorCode.BAD_AUDIO, f"{int(bad.sum())} NaN/inf samples replaced by 0")
        samples = np.clip(samples, -1.0, 1.0)
    return samples, problem


def encode_event(event: dict) -> str:
    """The one event serializer (socket, MQTT, `transcribe --json`)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def rounded(seconds: float) -> float:
    return round(seconds, 3) if math.isfinite(seconds) else 0.0

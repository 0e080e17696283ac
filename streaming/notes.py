"""Note export: one stored session rendered as JSON, Markdown, SRT or WebVTT.

`render_note(note, fmt)` returns ``(body, content_type)``; the server's
``GET /v1/notes/{session}[.json|.md|.srt|.vtt]`` is a thin wrapper around it.

JSON (``application/json``), stable keys, times in seconds rounded to milliseconds::

    {"version": 1,
     "session": {"id", "title", "created", "updated", "closed", "duration", "n_segments", "meta"},
     "segments": [{"index", "start", "end", "speaker", "text",
                   "words": [{"word", "start", "end", "confidence"}]}],
     "topics": [{"index", "start_segment", "end_segment", "start", "end", "title", "bullets", ...}],
     "speaker_share": [{"speaker", "seconds", "percent"}]}

``created``/``updated`` are unix times; ``speaker`` and ``title`` are null when unknown.

Captions (SRT, VTT): one or more cues per segment. A long segment is split at word times so that
no cue needs more than 2 lines of 42 characters or lasts more than 7 s; lines are balanced.
The speaker, when known, prefixes every cue (``[Speaker 1] ...`` in SRT, ``<v Speaker 1>`` in VTT).

Markdown: title, date, duration, speakers with their talk-time share, the topics (title, time range, bullets) when there are
any, then the transcript in paragraphs -- a new one at each speaker turn, topic start, pause of
4 s or more, or after a minute -- each opened by its ``[mm:ss]`` time and speaker.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from streaming.store import Note, Segment

FORMATS = ("json", "md", "srt", "vtt")
CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}
JSON_VERSION = 1
LINE_CHARS = 42          # caption line length (BBC / Netflix guidance)
MAX_LINES = 2
MAX_CUE_S = 7.0
CUE_GAP_S = 1.0         # shorter gaps between a segment's cues are closed
PARAGRAPH_PAUSE_S = 4.0
PARAGRAPH_MAX_S = 60.0

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def render_note(note: Note, fmt: str) -> tuple[str, str]:
    """(body, content type) of `note` in `fmt` (one of FORMATS; a leading "." is allowed)."""
    key = fmt.lower().lstrip(".") if isinstance(fmt, str) else fmt
    renderers = {"json": _json, "md": _markdown, "srt": _srt, "vtt": _vtt}
    if key not in renderers:
        raise ValueError(f"unknown note format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return renderers[key](note), CONTENT_TYPES[key]


def note_title(note: Note) -> str:
    title = note.info.meta.get("title")
    return str(title).strip() if title and str(title).strip() else f"Note {note.info.session_id}"


# ---------------------------------------------------------------------------------- JSON

def _ms(t: float | None) -> float | None:
    return None if t is None else round(float(t), 3)


def speaker_share(note: Note) -> list[dict]:
    """Talk time per speaker from the stored segments (each counted whole under its label, as the
    live `speaker_share` events count them), most talkative first."""
    seconds: dict[str, float] = {}
    for s in note.segments:
        if s.speaker:
            seconds[s.speaker] = seconds.get(s.speaker, 0.0) + max(0.0, s.end - s.start)
    total = sum(seconds.values()) or 1.0
    return [{"speaker": k, "seconds": round(v, 3), "percent": round(100 * v / total, 1)}
            for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])]


def _json(note: Note) -> str:
    info = note.info
    doc = {
        "version": JSON_VERSION,
        "session": {"id": info.session_id, "title": info.meta.get("title"),
                    "created": info.created, "updated": info.updated, "closed": info.closed,
                    "duration": _ms(info.duration), "n_segments": info.n_segments,
                    "meta": info.meta},
        "segments": [{"index": s.index, "start": _ms(s.start), "end": _ms(s.end),
                      "speaker": s.speaker, "text": s.text,
                      "words": [{"word": w.word, "start": _ms(w.start), "end": _ms(w.end),
                                 "confidence": round(float(w.confidence), 4)} for w in s.words]}
                     for s in note.segments],
        "topics": [{**t, "start": _ms(t.get("start")), "end": _ms(t.get("end"))}
                   for t in note.topics],
        "speaker_share": speaker_share(note),
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


# ---------------------------------------------------------------------------------- captions

@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str                # plain text of the cue, without the speaker
    speaker: str | None


def wrap_caption(text: str, width: int = LINE_CHARS) -> list[str]:
    """Lines of `text`: one if it fits, else the most balanced split into two lines of at most
    `width` characters, else a greedy wrap (more lines: the caller splits such text into cues)."""
    if len(text) <= width:
        return [text]
    best = None
    for i, ch in enumerate(text):
        if ch == " ":
            a, b = text[:i], text[i + 1:]
            if len(a) <= width and len(b) <= width:
                score = max(len(a), len(b))
                if best is None or score < best[0]:
                    best = (score, [a, b])
    if best is not None:
        return best[1]
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line]


def _fits(text: str) -> bool:
    lines = wrap_caption(text)
    return len(lines) <= MAX_LINES and all(len(line) <= LINE_CHARS for line in lines)


def _timed_tokens(seg: Segment) -> list[tuple[str, float, float]]:
    """The segment's text as (token, start, end). Tokens come from `text` (which may carry
    punctuation and case); times from `words` when they match one to one, else spread over the
    segment in proportion to characters. Tokens longer than a line are cut."""
    tokens = []
    for token in _CONTROL.sub(" ", seg.text).split():
        tokens += [token[i:i + LINE_CHARS] for i in range(0, len(token), LINE_CHARS)]
    if not tokens:
        return []
    if len(seg.words) == len(tokens):
        return [(t, w.start, w.end) for t, w in zip(tokens, seg.words)]
    total = sum(len(t) + 1 for t in tokens)
    span = max(seg.end - seg.start, 0.0)
    out, pos = [], 0
    for t in tokens:
        start = seg.start + span * pos / total
        pos += len(t) + 1
        out.append((t, start, seg.start + span * (pos - 1) / total))
    return out


def caption_cues(note: Note, prefix_chars: bool = False) -> list[Cue]:
    """Cues for all segments. `prefix_chars`: the speaker label is shown as text ("[Speaker 1] ")
    and so counts against the line length (SRT)."""
    cues = []
    for seg in note.segments:
        tokens = _timed_tokens(seg)
        if not tokens:
            continue
        prefix = f"[{seg.speaker}] " if (prefix_chars and seg.speaker) else ""
        groups, current = [], []
        for tok in tokens:
            if current and (not _fits(prefix + " ".join(t[0] for t in current + [tok]))
                            or tok[2] - current[0][1] > MAX_CUE_S):
                groups.append(current)
                current = []
            current.append(tok)
        groups.append(current)
        _rebalance(groups, prefix)
        seg_cues = []
        for g, group in enumerate(groups):
            start, end = group[0][1], group[-1][2]
            if g == 0:           # lead-in silence of the segment, within the cue length limit
                start = max(min(seg.start, start), end - MAX_CUE_S)
            if g == len(groups) - 1:
                end = min(max(seg.end, end), start + MAX_CUE_S)
            else:                # no flicker: hold the cue until the next one when the gap is short
                following = groups[g + 1][0][1]
                if following - end < CUE_GAP_S:
                    end = min(max(end, following), start + MAX_CUE_S)
            seg_cues.append(Cue(start, max(end, start), " ".join(t[0] for t in group), seg.speaker))
        cues += seg_cues
    return cues


def _rebalance(groups: list[list[tuple[str, float, float]]], prefix: str) -> None:
    """Greedy packing leaves a short last cue ("... heat flows" / "bodies"): move words from the
    end of each cue to the next one while that evens out their lengths and both still fit."""
    def chars(group):
        return sum(len(t[0]) + 1 for t in group)
    for i in range(len(groups) - 1, 0, -1):
        before, after = groups[i - 1], groups[i]
        while len(before) > 1:
            tok = before[-1]
            moved = [tok] + after
            if (chars(before) - chars(after) <= 2 * (len(tok[0]) + 1) - 1
                    or not _fits(prefix + " ".join(t[0] for t in moved))
                    or moved[-1][2] - moved[0][1] > MAX_CUE_S):
                break
            before.pop()
            after.insert(0, tok)


def _clock(t: float, sep: str) -> str:
    ms = max(0, round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _srt(note: Note) -> str:
    # SRT has no escaping: angle brackets would be read as tags and "-->" as a timing line.
    def clean(s: str) -> str:
        return s.replace("<", "‹").replace(">", "›")
    blocks = []
    for n, cue in enumerate(caption_cues(note, prefix_chars=True), 1):
        text = f"[{cue.speaker}] {cue.text}" if cue.speaker else cue.text
        lines = "\n".join(clean(line) for line in wrap_caption(text))
        blocks.append(f"{n}\n{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}\n{lines}\n")
    return "\n".join(blocks)


def _vtt_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(note: Note) -> str:
    blocks = ["WEBVTT\n"]
    for cue in caption_cues(note):
        lines = "\n".join(_vtt_escape(line) for line in wrap_caption(cue.text))
        if cue.speaker:
            lines = f"<v {_vtt_escape(cue.speaker)}>{lines}</v>"
        blocks.append(f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}\n{lines}\n")
    return "\n".join(blocks)


# ---------------------------------------------------------------------------------- Markdown

def md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", text))


def _stamp(t: float, hours: bool) -> str:
    s = max(0, int(t))
    if hours:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60:02d}:{s % 60:02d}"


def _duration(t: float) -> str:
    s = max(0, round(t))
    if s >= 3600:
        return f"{s // 3600} h {s // 60 % 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s"


def _paragraphs(note: Note) -> list[list[Segment]]:
    topic_starts = {t.get("start_segment") for t in note.topics} - {None}
    paragraphs: list[list[Segment]] = []
    for seg in note.segments:
        if not seg.text.strip():
            continue
        if paragraphs:
            first, last = paragraphs[-1][0], paragraphs[-1][-1]
            same = (seg.speaker == last.speaker and seg.index not in topic_starts
                    and seg.start - last.end < PARAGRAPH_PAUSE_S
                    and seg.end - first.start <= PARAGRAPH_MAX_S)
            if same:
                paragraphs[-1].append(seg)
                continue
        paragraphs.append([seg])
    return paragraphs


def _markdown(note: Note) -> str:
    info = note.info
    hours = info.duration >= 3600
    created = datetime.fromtimestamp(info.created).astimezone()
    offset = created.strftime("%z")
    out = [f"# {md_escape(note_title(note))}", "",
           f"- **Date:** {created:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})",
           f"- **Duration:** {_duration(info.duration)}"]
    share = speaker_share(note)
    if share:
        out.append("- **Speakers:** " + ", ".join(
            f"{md_escape(s['speaker'])} ({s['percent']:.0f} %, {_duration(s['seconds'])})" for s in share))
    out += [f"- **Session:** `{info.session_id}`", ""]

    if note.topics:
        out += ["## Topics", ""]
        for n, topic in enumerate(note.topics, 1):
            title = md_escape(str(topic.get("title") or f"Topic {n}"))
            span = ""
            if topic.get("start") is not None and topic.get("end") is not None:
                span = f" [{_stamp(topic['start'], hours)}–{_stamp(topic['end'], hours)}]"
            out += [f"### {n}. {title}{span}", ""]
            bullets = topic.get("bullets") or []
            out += [f"- {md_escape(str(b))}" for b in bullets]
            if bullets:
                out.append("")

    out += ["## Transcript", ""]
    paragraphs = _paragraphs(note)
    if not paragraphs:
        out += ["*(no speech transcribed)*", ""]
    for para in paragraphs:
        text = md_escape(" ".join(s.text.strip() for s in para))
        stamp = f"[{_stamp(para[0].start, hours)}]"
        if para[0].speaker:
            out += [f"**{md_escape(para[0].speaker)}** {stamp}  ", text, ""]
        else:
            out += [f"{stamp} {text}", ""]
    return "\n".join(out)

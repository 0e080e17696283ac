"""Note export: JSON, Markdown, SRT and WebVTT that can be used as they are."""
from __future__ import annotations

import html
import json
import re

import pytest

from streaming.notes import FORMATS, LINE_CHARS, MAX_CUE_S, render_note, wrap_caption
from streaming.store import Note, Segment, SessionInfo, Word

SRT_TIME = r"\d\d:\d\d:\d\d,\d\d\d"
VTT_TIME = r"\d\d:\d\d:\d\d\.\d\d\d"


def words_of(text: str, start: float, step: float = 0.4) -> tuple[Word, ...]:
    return tuple(Word(w, start + i * step, start + i * step + step * 0.8, 0.9)
                 for i, w in enumerate(text.split()))


def make_note(segments, topics=(), meta=None, session_id="lec-7") -> Note:
    duration = max((s.end for s in segments), default=0.0)
    info = SessionInfo(session_id, 1764000000.0, 1764000100.0, True, meta or {}, len(segments),
                       duration)
    return Note(info, tuple(segments), tuple(topics))


LONG = ("today we look at the second law of thermodynamics and why entropy of an isolated "
        "system never decreases which is the reason heat flows from hot to cold bodies")
NOTE = make_note([
    Segment(0, 62.345, 64.0, "hello everyone", words_of("hello everyone", 62.345), "Speaker 1"),
    Segment(1, 64.5, 64.5 + 0.4 * len(LONG.split()), LONG, words_of(LONG, 64.5), "Speaker 1"),
    Segment(2, 100.0, 102.0, "what about <b>black holes</b> & stars?", (), "Speaker 2"),
    Segment(3, 103.0, 104.0, "no speaker yet"),
], topics=[{"index": 0, "start_segment": 0, "end_segment": 1, "start": 62.345, "end": 98.0,
            "title": "The second law", "bullets": ["entropy grows", "heat flows hot to cold"]}],
    meta={"title": "Physics 101"})


def cues(body: str) -> list[list[str]]:
    return [block.split("\n") for block in body.strip("\n").split("\n\n")]


def seconds(stamp: str) -> float:
    h, m, s = re.split(r":", stamp.replace(",", "."))
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_unknown_format_names_the_known_ones():
    with pytest.raises(ValueError, match="json, md, srt, vtt"):
        render_note(NOTE, "docx")
    assert FORMATS == ("json", "md", "srt", "vtt")
    assert render_note(NOTE, ".SRT")[1].startswith("application/x-subrip")


def test_json_has_stable_keys_and_round_trips_words():
    body, ctype = render_note(NOTE, "json")
    assert ctype == "application/json; charset=utf-8"
    doc = json.loads(body)
    assert list(doc) == ["version", "session", "segments", "topics", "speaker_share"]
    assert doc["speaker_share"] == [{"speaker": "Speaker 1", "seconds": 13.255, "percent": 86.9},
                                    {"speaker": "Speaker 2", "seconds": 2.0, "percent": 13.1}]
    assert list(doc["session"]) == ["id", "title", "created", "updated", "closed", "duration",
                                    "n_segments", "meta"]
    assert doc["session"]["id"] == "lec-7" and doc["session"]["title"] == "Physics 101"
    first = doc["segments"][0]
    assert list(first) == ["index", "start", "end", "speaker", "text", "words"]
    assert first["words"][0] == {"word": "hello", "start": 62.345, "end": 62.665, "confidence": 0.9}
    assert doc["segments"][3]["speaker"] is None
    assert doc["topics"][0]["bullets"] == ["entropy grows", "heat flows hot to cold"]


def test_srt_numbering_timestamps_and_speaker_prefix():
    body, ctype = render_note(NOTE, "srt")
    assert ctype == "application/x-subrip; charset=utf-8"
    blocks = cues(body)
    assert [b[0] for b in blocks] == [str(n) for n in range(1, len(blocks) + 1)]
    assert blocks[0][1] == "00:01:02,345 --> 00:01:04,000"
    assert blocks[0][2] == "[Speaker 1] hello everyone"
    for b in blocks:
        assert re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", b[1])
        start, end = (seconds(t) for t in b[1].split(" --> "))
        assert 0 < end - start <= MAX_CUE_S
    assert blocks[-1][2] == "no speaker yet"              # no prefix when unknown
    assert all(b[2].startswith("[Speaker") for b in blocks[:-1])
    # no tags for players to interpret, and no blank or arrow lines inside a cue
    assert "<b>" not in body and "‹b›black holes‹/b› & stars?" in body


def test_vtt_header_timestamps_voices_and_escaping():
    body, ctype = render_note(NOTE, "vtt")
    assert ctype == "text/vtt; charset=utf-8"
    assert body.startswith("WEBVTT\n\n")
    blocks = cues(body)[1:]
    assert blocks[0][0] == "00:01:02.345 --> 00:01:04.000"
    assert blocks[0][1] == "<v Speaker 1>hello everyone</v>"
    for b in blocks:
        assert re.fullmatch(f"{VTT_TIME} --> {VTT_TIME}", b[0])
    assert "<v Speaker 2>what about &lt;b&gt;black holes&lt;/b&gt; &amp; stars?</v>" in body
    assert blocks[-1][1] == "no speaker yet"


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_long_segments_are_split_at_word_times_into_short_cues(fmt):
    body, _ = render_note(NOTE, fmt)
    blocks = [b for b in cues(body) if "-->" in "".join(b)]
    long_cues = []
    for b in blocks:
        timing = next(i for i, line in enumerate(b) if "-->" in line)
        text = [html.unescape(re.sub(r"</?v[^>]*>", "", line)) for line in b[timing + 1:]]
        assert 1 <= len(text) <= 2 and all(len(line) <= LINE_CHARS for line in text), text
        start, end = (seconds(t) for t in b[timing].split(" --> "))
        assert end - start <= MAX_CUE_S
        if 64.5 <= start < 100.0:                           # cues of the long segment
            long_cues.append((start, end, " ".join(text)))
    assert len(long_cues) >= 2
    # cue boundaries fall on word times of the segment, in order
    word_starts = {round(w.start, 3) for w in NOTE.segments[1].words} | {64.5}
    assert all(round(s, 3) in word_starts for s, _, _ in long_cues)
    assert [s for s, _, _ in long_cues] == sorted(s for s, _, _ in long_cues)
    words = " ".join(t for _, _, t in long_cues).replace("[Speaker 1] ", "").split()
    assert words == LONG.split()                           # nothing lost or repeated
    # balanced, not greedy: no one-word orphan at the end; no flicker between a segment's cues
    assert len(long_cues[-1][2].replace("[Speaker 1] ", "").split()) > 1
    assert all(a[1] == b[0] for a, b in zip(long_cues, long_cues[1:]))


def test_segment_without_word_times_is_split_by_characters():
    seg = Segment(0, 0.0, 20.0, LONG)
    body, _ = render_note(make_note([seg]), "srt")
    blocks = cues(body)
    assert len(blocks) >= 3
    assert seconds(blocks[0][1].split(" --> ")[0]) == 0.0
    assert seconds(blocks[-1][1].split(" --> ")[1]) == 20.0


def test_balanced_two_line_wrap():
    lines = wrap_caption("the quick brown fox jumps over the lazy dog and runs far away")
    assert len(lines) == 2 and all(len(line) <= LINE_CHARS for line in lines)
    assert abs(len(lines[0]) - len(lines[1])) <= 6
    assert wrap_caption("short line") == ["short line"]


def test_markdown_reads_like_a_note():
    body, ctype = render_note(NOTE, "md")
    assert ctype == "text/markdown; charset=utf-8"
    lines = body.split("\n")
    assert lines[0] == "# Physics 101"
    assert re.search(r"^- \*\*Date:\*\* \d{4}-\d\d-\d\d \d\d:\d\d \(UTC[+-]\d\d:\d\d\)$", body, re.M)
    assert "- **Duration:** 1 min 44 s" in lines
    # talk time: speaker 1 has 1.655 s + 29 words x 0.4 s = 13.255 s of 15.255 s labelled
    assert "- **Speakers:** Speaker 1 (87 %, 0 min 13 s), Speaker 2 (13 %, 0 min 02 s)" in lines
    assert body.index("## Topics") < body.index("## Transcript")
    assert "### 1. The second law [01:02–01:38]" in lines
    assert "- entropy grows" in lines
    transcript = body[body.index("## Transcript"):].split("\n\n")[1:]
    # speaker 1's two segments are one paragraph; then speaker 2; then an unlabelled one
    assert transcript[0].startswith("**Speaker 1** [01:02]  \nhello everyone today we look")
    assert transcript[1].startswith("**Speaker 2** [01:40]  \nwhat about \\<b\\>black holes")
    assert transcript[2].strip() == "[01:43] no speaker yet"


def test_markdown_default_title_long_sessions_and_pauses():
    segs = [Segment(0, 10.0, 12.0, "first thought"), Segment(1, 12.5, 14.0, "goes on"),
            Segment(2, 30.0, 31.0, "after a pause"), Segment(3, 3725.0, 3727.0, "much later")]
    body, _ = render_note(make_note(segs, session_id="abc"), "md")
    assert body.startswith("# Note abc\n")
    assert "## Topics" not in body
    assert "- **Duration:** 1 h 02 min" in body
    assert "[0:00:10] first thought goes on\n" in body        # h:mm:ss once past an hour
    assert "[0:00:30] after a pause\n" in body
    assert "[1:02:05] much later\n" in body


def test_empty_note_renders_in_every_format():
    empty = make_note([])
    assert render_note(empty, "srt")[0] == ""
    assert render_note(empty, "vtt")[0] == "WEBVTT\n"
    assert "no speech transcribed" in render_note(empty, "md")[0]
    assert json.loads(render_note(empty, "json")[0])["segments"] == []

"""Online speaker clustering, as a specification: synthetic embeddings in, labels and events out.

No model here: `FakeEncoder` maps a clip to a prescribed embedding (the clip's constant sample
value picks the row), so every case states exactly what the tracker sees."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from streaming.protocol import ProtocolError, StartOptions, parse_start
from streaming.speakers import (AudioHistory, OnlineClustering, SessionSpeakers, SpeakerOptions,
                                SpeakerTracker, share_of, window_bounds)
from streaming.store import NoteStore, Segment

RATE = 16000
OPTIONS = SpeakerOptions()


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def voices(n: int, seed: int = 0) -> np.ndarray:
    """n voice centres, pairwise cosine distance ~0.5 (as distinct real voices)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=256)
    return np.stack([unit(common + rng.normal(size=256)) for _ in range(n)])


def sample(voice: np.ndarray, rng, spread: float = 0.25) -> np.ndarray:
    """An utterance of `voice`: cosine distance ~0.05-0.1 from its centre."""
    return unit(voice + spread * rng.normal(size=256) / np.sqrt(256) * 2)


class FakeEncoder:
    """Clip -> embedding row `round(clip[0] * 1000) - 1` of `table`."""
    sample_rate = RATE

    def __init__(self, table: np.ndarray):
        self.table = table

    def embed_many(self, clips):
        return np.stack([self.table[int(round(float(c[0]) * 1000)) - 1] for c in clips])


def clip(row: int, seconds: float) -> np.ndarray:
    return np.full(int(seconds * RATE), (row + 1) / 1000, np.float32)  # voiced: not silent


def test_alternating_speakers_get_stable_labels_in_order_of_appearance():
    rng = np.random.default_rng(1)
    v = voices(3)
    clustering = OnlineClustering(OPTIONS)
    order = [0, 1, 0, 2, 1, 0, 2, 2, 1, 0] * 3
    labels = [clustering.assign(sample(v[k], rng), 3.0, True)[0] for k in order]
    expected = {0: "Speaker 1", 1: "Speaker 2", 2: "Speaker 3"}
    assert labels == [expected[k] for k in order]
    assert len(clustering.clusters) == 3


def test_the_cap_on_speakers_holds_and_extra_voices_join_the_nearest():
    rng = np.random.default_rng(2)
    v = voices(12)
    clustering = OnlineClustering(replace(OPTIONS, max_speakers=4))
    labels = {clustering.assign(sample(v[k % 12], rng), 4.0, True)[0] for k in range(60)}
    assert labels == {"Speaker 1", "Speaker 2", "Speaker 3", "Speaker 4"}


def test_short_or_unconfident_spans_never_open_a_speaker():
    rng = np.random.default_rng(3)
    v = voices(2)
    clustering = OnlineClustering(OPTIONS)
    clustering.assign(sample(v[0], rng), 4.0, True)
    for _ in range(10):  # back-channels of another voice: too short to open a speaker
        assert clustering.assign(sample(v[1], rng), 0.5, True)[0] == "Speaker 1"
        assert clustering.assign(sample(v[1], rng), 1.5, True)[0] == "Speaker 1"   # < min_new_s
        assert clustering.assign(sample(v[1], rng), 5.0, False)[0] == "Speaker 1"  # not voiced
    assert len(clustering.clusters) == 1
    assert clustering.assign(sample(v[1], rng), 3.0, True)[0] == "Speaker 2"


def test_a_tentative_first_speaker_is_taken_over_not_duplicated():
    """A short "Hello?" opens Speaker 1; the same person's first real sentence, whose embedding is
    far from that poor one, takes Speaker 1 over instead of opening Speaker 2."""
    rng = np.random.default_rng(4)
    v = voices(3)
    clustering = OnlineClustering(OPTIONS)
    assert clustering.assign(v[2], 0.4, True)[0] == "Speaker 1"      # too short: tentative
    assert clustering.assign(sample(v[0], rng), 4.0, True)[0] == "Speaker 1"
    assert clustering.assign(sample(v[0], rng), 4.0, True)[0] == "Speaker 1"
    assert clustering.assign(sample(v[1], rng), 4.0, True)[0] == "Speaker 2"
    assert len(clustering.clusters) == 2


def test_two_clusters_of_one_voice_merge_with_an_explicit_event_and_labels_never_renumber():
    rng = np.random.default_rng(5)
    centre, other = voices(2)
    direction = unit(rng.normal(size=256) - (rng.normal(size=256) @ centre) * centre)
    # two early utterances pulled apart (distance ~0.36 > threshold), then the voice's centre
    a, b = unit(centre + 0.44 * direction), unit(centre - 0.44 * direction)
    assert 1 - a @ b > OPTIONS.threshold
    table = np.stack([a, b, centre, other])
    tracker = SpeakerTracker(FakeEncoder(table), OPTIONS)
    assert tracker.tag(clip(0, 2.5), 0.0, 0).speaker == "Speaker 1"
    assert tracker.tag(clip(1, 2.5), 3.0, 1).speaker == "Speaker 2"
    tagging = tracker.tag(clip(2, 8.0), 6.0, 2)     # the voice's centre: 1 and 2 meet
    merges = [(m.source, m.target) for m in tagging.merges]
    assert merges == [("Speaker 2", "Speaker 1")]
    assert tagging.speaker == "Speaker 1" and tagging.relabelled == ((1, "Speaker 1"),)
    assert tracker.labels == {0: "Speaker 1", 1: "Speaker 1", 2: "Speaker 1"}
    assert tracker.tag(clip(3, 3.0), 15.0, 3).speaker == "Speaker 3"   # "Speaker 2" is retired
    assert [s["speaker"] for s in tracker.share()] == ["Speaker 1", "Speaker 3"]
    assert tracker.share()[0]["seconds"] == pytest.approx(13.0)


def test_a_speaker_change_inside_a_long_segment_is_found():
    v = voices(2)
    tracker = SpeakerTracker(FakeEncoder(v), OPTIONS)
    tracker.tag(clip(0, 4.0), 0.0, 0)
    tracker.tag(clip(1, 4.0), 5.0, 1)
    audio = np.concatenate([clip(0, 6.0), clip(1, 3.0)])   # windows of 1.5 s: 4 of voice 0, 2 of voice 1
    tagging = tracker.tag(audio, 10.0, 2)
    assert [(t.speaker, t.start, t.end) for t in tagging.turns] == [("Speaker 1", 10.0, 16.0),
                                                                     ("Speaker 2", 16.0, 19.0)]
    assert tagging.speaker == "Speaker 1"


def test_garbage_never_opens_speakers_endlessly():
    """Random embeddings (noise, music, crosstalk) of any length: at most max_speakers."""
    rng = np.random.default_rng(6)
    clustering = OnlineClustering(replace(OPTIONS, max_speakers=3))
    labels = {clustering.assign(unit(rng.normal(size=256)), float(rng.uniform(0.2, 8)), True)[0]
              for _ in range(200)}
    assert len(labels) <= 3 and len(clustering.clusters) <= 3


def test_share_counts_segment_time_under_its_label_and_sorts_labels_numerically():
    share = share_of({"Speaker 10": 1.0, "Speaker 2": 3.0})
    assert [s["speaker"] for s in share] == ["Speaker 2", "Speaker 10"]
    assert [s["percent"] for s in share] == [75.0, 25.0]
    assert share_of({}) == []


def test_audio_history_keeps_the_last_seconds_by_absolute_position():
    history = AudioHistory(100)
    data = np.arange(250, dtype=np.float32)
    for i in range(0, 250, 30):
        history.append(data[i:i + 30])
    assert np.array_equal(history.span(160, 250), data[160:250])
    assert np.array_equal(history.span(100, 200), data[150:200])   # older samples are gone
    assert len(history.span(300, 400)) == 0
    history.append(np.arange(1000, 1300, dtype=np.float32))        # one append larger than the buffer
    assert np.array_equal(history.span(0, 10_000), np.arange(1200, 1300, dtype=np.float32))


def test_window_bounds_cover_the_span():
    assert window_bounds(100, 30) == [(0, 33), (33, 67), (67, 100)]
    assert window_bounds(20, 30) == [(0, 20)]


def test_session_speakers_persist_labels_and_merges_to_the_store():
    rng = np.random.default_rng(5)
    centre, _ = voices(2)
    direction = unit(rng.normal(size=256) - (rng.normal(size=256) @ centre) * centre)
    table = np.stack([unit(centre + 0.44 * direction), unit(centre - 0.44 * direction), centre])
    store = NoteStore(":memory:")
    store.open_session("s")
    speakers = SessionSpeakers(FakeEncoder(table), OPTIONS)
    events = []
    for index, (row, seconds) in enumerate([(0, 2.5), (1, 2.5), (2, 8.0)]):
        start = 3.0 * index
        segment = Segment(index, start, start + seconds, f"segment {index}")
        store.add_segment("s", segment)
        speakers.append(clip(row, 3.0 if index < 2 else 9.0))
        tagging = speakers.tag(segment)
        speakers.persist(store, "s", index, tagging)
        events += speakers.merge_events(tagging)
    assert events == [{"from": "Speaker 2", "into": "Speaker 1", "segments": [1]}]
    assert [s.speaker for s in store.get_note("s").segments] == ["Speaker 1"] * 3
    assert speakers.share_fields() == {"speakers": [{"speaker": "Speaker 1", "seconds": 13.0, "percent": 100.0}],
                                       "total": 13.0}
    resumed = SessionSpeakers(FakeEncoder(table), OPTIONS, 14.0, store.get_note("s").segments)
    assert resumed.tracker.clustering._next_number == 2 and resumed.share_fields()["total"] == 13.0


class CountingEncoder(FakeEncoder):
    def __init__(self, table: np.ndarray):
        super().__init__(table)
        self.calls = 0

    def embed_many(self, clips):
        self.calls += 1
        return super().embed_many(clips)


def test_embedding_ahead_of_the_final_is_reused_only_for_the_same_span():
    table = voices(2)
    segments = [Segment(0, 0.0, 2.5, "first"), Segment(1, 3.0, 5.5, "second")]
    plain_encoder, ahead_encoder = CountingEncoder(table), CountingEncoder(table)
    plain, ahead = SessionSpeakers(plain_encoder, OPTIONS), SessionSpeakers(ahead_encoder, OPTIONS)
    for speakers in (plain, ahead):
        speakers.append(np.concatenate([clip(0, 3.0), clip(1, 3.0)]))
    expected = [plain.tag(s) for s in segments]
    assert plain_encoder.calls == 2 and not any(t.embedded_ahead for t in expected)

    ahead.embed_ahead(0.0, 2.5)          # the partial's span = the final's: embedded once
    assert ahead_encoder.calls == 1
    first = ahead.tag(segments[0])
    assert ahead_encoder.calls == 1 and first.embedded_ahead
    assert replace(first, embedded_ahead=False) == expected[0]

    ahead.embed_ahead(3.0, 5.0)          # the final grew past the partial: embedded again
    second = ahead.tag(segments[1])
    assert ahead_encoder.calls == 3 and not second.embedded_ahead
    assert second == expected[1] and ahead.ahead is None


def test_start_options_for_speakers():
    options = parse_start({"type": "start", "speakers": False, "max_speakers": 3, "speaker_threshold": 0.4},
                          StartOptions())
    assert (options.speakers, options.max_speakers, options.speaker_threshold) == (False, 3, 0.4)
    assert parse_start({"max_speakers": "5"}, StartOptions()).max_speakers == 5   # URL query
    for bad in ({"max_speakers": 0}, {"max_speakers": 2.5}, {"max_speakers": "x"}, {"max_speakers": True},
                {"speaker_threshold": 0}, {"speaker_threshold": "nan"}, {"speaker_threshold": 3}):
        with pytest.raises(ProtocolError) as err:
            parse_start(bad, StartOptions())
        assert err.value.code.value == "bad_message"

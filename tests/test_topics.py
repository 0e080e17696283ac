"""Topic segmentation: the metrics on hand-computed cases, the online tracker on synthetic and real
sentence embeddings, and `topic` events end to end through a real server (tone speech)."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import numpy as np
import pytest

from server_fixtures import converse, finals, server_factory, utterances  # noqa: F401
from streaming.topics import (TopicOptions, TopicTracker, default_k, equal_spacing, pk, segment_offline,
                              window_diff)

ANIMALS = ["the dog chased the cat in the yard", "our puppy barks at every bird", "cats sleep most of the day",
           "a kitten plays with the dog", "the dog and the puppy eat meat", "pets need a vet visit each year"]
MONEY = ["the stock market fell sharply today", "bank rates rose again this month", "traders sold shares and bonds",
         "the market price of oil jumped", "investors fear a bank crisis", "money flows out of stocks"]


# ---------------------------------------------------------------------------------- metrics

def test_pk_and_windowdiff_by_hand():
    # units 0..5, reference topics [0,1,2 | 3,4,5]; k = round(3 / 2) = 2; pairs (0,2) (1,3) (2,4) (3,5)
    assert default_k([3, 3]) == 2
    assert pk([3, 3], [3, 3]) == 0.0 and window_diff([3, 3], [3, 3]) == 0.0
    # no boundary at all: pairs (1,3) and (2,4) straddle the true boundary -> 2 of 4 wrong
    assert pk([3, 3], [6]) == 0.5 and window_diff([3, 3], [6]) == 0.5
    # boundary one unit late (after unit 3): only pair (1,3)... ref differs, hyp same -> 1 of 4;
    # and pair (3,5): ref same, hyp differs -> 2 of 4
    assert pk([3, 3], [4, 2]) == 0.5
    # WindowDiff sees what Pk misses: two true boundaries in one window, one guessed (k = 3)
    assert pk([2, 2, 2], [3, 3], k=3) == 0.0
    assert window_diff([2, 2, 2], [3, 3], k=3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        pk([3, 3], [5])


def test_equal_spacing_baseline():
    assert equal_spacing(10, 5) == [5, 5]
    assert equal_spacing(7, 3) == [4, 3]
    assert equal_spacing(3, 10) == [3]


# ---------------------------------------------------------------------------------- tracker

def _cluster(rng, centre, n, noise=0.1):
    v = centre + noise * rng.normal(size=(n, len(centre)))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_tracker_cuts_between_two_clusters_after_the_decision_delay():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=32), rng.normal(size=32)
    vectors = np.concatenate([_cluster(rng, a / np.linalg.norm(a), 8), _cluster(rng, b / np.linalg.norm(b), 8)])
    options = TopicOptions()
    tracker, closed_at = TopicTracker(options), None
    for i, v in enumerate(vectors):
        closed = tracker.add(v)
        if closed:
            assert closed_at is None and [(t.index, t.start, t.end) for t in closed] == [(0, 0, 7)]
            closed_at = i + 1
    assert closed_at == 8 + options.decision_delay       # segments seen when the cut was made
    assert [(t.index, t.start, t.end) for t in tracker.finish()] == [(1, 8, 15)]


def test_tracker_respects_minimum_length_and_keeps_one_topic_without_change():
    rng = np.random.default_rng(1)
    centre = rng.normal(size=32)
    same = _cluster(rng, centre / np.linalg.norm(centre), 30)
    assert segment_offline(same) == [30]
    # alternating subjects every 2 segments: shorter than min_segments, so no 2-segment topics
    a, b = rng.normal(size=32), rng.normal(size=32)
    flicker = np.concatenate([_cluster(rng, c / np.linalg.norm(c), 2) for _ in range(6) for c in (a, b)])
    assert min(segment_offline(flicker, TopicOptions(min_segments=4))) >= 4


def test_tracker_on_real_sentence_embeddings():
    from models.text_embedding import TextEmbedder
    vectors = TextEmbedder().embed(ANIMALS + MONEY)
    assert segment_offline(vectors) == [6, 6]


# ---------------------------------------------------------------------------------- end to end

def test_topic_events_and_note_end_to_end(server_factory):
    """Two subjects spoken as tone speech: one `topic` event per subject, stored in the note, in the .md."""
    server = server_factory()
    events = asyncio.run(converse(server.url(), utterances(*ANIMALS, *MONEY),
                                  start={"type": "start", "session_id": "two-topics"}))
    assert finals(events) == ANIMALS + MONEY
    topics = [e for e in events if e["type"] == "topic"]
    assert [(t["index"], t["start_segment"], t["end_segment"]) for t in topics] == [(0, 0, 5), (1, 6, 11)]
    kinds = [e["type"] for e in events]
    last_final = max(i for i, k in enumerate(kinds) if k == "final")
    assert kinds[-1] == "note" and kinds.index("topic") < last_final     # the first one went out live
    finals_by_index = {e["segment"]: e for e in events if e["type"] == "final"}
    for t in topics:
        assert t["summary"] == "extractive"
        assert 1 <= len(t["title"].split()) <= 8 and 2 <= len(t["bullets"]) <= 5
        assert t["start"] == finals_by_index[t["start_segment"]]["start"]
        assert t["end"] == finals_by_index[t["end_segment"]]["end"]
    assert "dog" in topics[0]["title"].lower() and any(w in topics[1]["title"].lower() for w in ("bank", "market", "stock"))

    with urllib.request.urlopen(server.http("/v1/notes/two-topics"), timeout=10) as r:
        stored = json.loads(r.read())["topics"]
    assert [(t["index"], t["title"], t["bullets"]) for t in stored] == [(t["index"], t["title"], t["bullets"])
                                                                       for t in topics]
    with urllib.request.urlopen(server.http("/v1/notes/two-topics.md"), timeout=10) as r:
        md = r.read().decode()
    assert md.index("## Topics") < md.index(topics[0]["title"]) < md.index(topics[1]["title"]) < md.index("## Transcript")
    assert f"- {topics[0]['bullets'][0]}" in md and "[00:00–00:" in md and "the dog chased the cat" in md


def test_no_topics_when_the_client_asks_for_no_summaries(server_factory):
    server = server_factory()
    events = asyncio.run(converse(server.url(), utterances(*ANIMALS[:5]), start={"type": "start", "summaries": False}))
    assert len(finals(events)) == 5 and not [e for e in events if e["type"] == "topic"]

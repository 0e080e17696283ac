"""The streaming CTC prefix beam search, without a language model: CTC rules, streaming, state,
timestamps, bad input. Posteriors are hand-made or synthetic (decoders/synthetic.py)."""
from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from decoders.beam_search import StreamingBeamSearch
from decoders.options import DecoderOptions
from decoders.prefix import Prefix
from decoders.synthetic import log_probs_from_frames, template_test_set

BLANK = 0


def ids(vocabulary, text: str) -> list[int]:
    return [vocabulary.tokens.index("▁" if c == " " else c) for c in text]


def spelled(vocabulary, text: str, p: float = 0.9) -> np.ndarray:
    """Each character as one confident frame, with a blank frame after it."""
    frames = []
    for token in ids(vocabulary, text):
        frames += [{token: p}, {BLANK: p}]
    return log_probs_from_frames(frames, len(vocabulary))


def test_clean_posteriors_decode_to_their_text(char_vocabulary):
    log_probs = spelled(char_vocabulary, "the cat sat")
    assert StreamingBeamSearch(char_vocabulary).decode(log_probs).text == "the cat sat"


def test_repeated_token_merges_unless_a_blank_separates_it(char_vocabulary):
    l, o, h, e = ids(char_vocabulary, "lohe")
    merged = log_probs_from_frames([{h: .9}, {e: .9}, {l: .9}, {l: .9}, {o: .9}], len(char_vocabulary))
    separated = log_probs_from_frames([{h: .9}, {e: .9}, {l: .9}, {BLANK: .9}, {l: .9}, {o: .9}],
                                      len(char_vocabulary))
    search = StreamingBeamSearch(char_vocabulary)
    assert search.decode(merged).text == "helo"
    assert search.decode(separated).text == "hello"


def test_prefix_search_sums_paths_that_greedy_decoding_splits(char_vocabulary):
    # Frame by frame 'a' never wins, yet "a" has more probability mass (a-, -a, aa) than "" has.
    a, = ids(char_vocabulary, "a")
    log_probs = log_probs_from_frames([{BLANK: .5, a: .4}, {BLANK: .5, a: .4}], len(char_vocabulary))
    assert char_vocabulary.greedy(log_probs) == ""
    assert StreamingBeamSearch(char_vocabulary).decode(log_probs).text == "a"


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=12))
def test_any_chunking_gives_the_same_result_as_one_chunk(char_tokenizer, char_vocabulary, cuts):
    _, [log_probs] = template_test_set(char_tokenizer, 1, seed=11, confusion=0.15)
    options = DecoderOptions(max_history_words=2)  # commits happen inside the utterance too
    whole = StreamingBeamSearch(char_vocabulary, options).decode(log_probs)
    search = StreamingBeamSearch(char_vocabulary, options)
    bounds = sorted({c for c in cuts if c < len(log_probs)})
    for start, end in zip([0, *bounds], [*bounds, len(log_probs)]):
        search.advance(log_probs[start:end])
    assert search.finalize() == whole


def test_partial_shows_the_words_so_far_and_finalize_resets(char_vocabulary):
    log_probs = spelled(char_vocabulary, "one two")
    search = StreamingBeamSearch(char_vocabulary)
    search.advance(log_probs[:9])  # o - n - e - ▁ - t
    assert search.partial().text == "one t"
    search.advance(log_probs[9:])
    assert search.partial().text == "one two"
    assert search.finalize().text == "one two"
    assert search.partial().text == "" and search.state.frames == 0
    assert search.decode(log_probs).text == "one two"  # a second utterance is decoded afresh


def test_word_times_and_confidences(char_vocabulary):
    c, a, t, d, o, g, space = ids(char_vocabulary, "catdog ")
    frames = [{BLANK: .99}] * 10 + [{c: .9}, {a: .9}, {BLANK: .9}, {t: .9}] + [{BLANK: .99}] * 5
    frames += [{space: .9}] + [{BLANK: .99}] * 5 + [{d: .9}, {o: .4, BLANK: .3}, {g: .9}, {BLANK: .99}]
    words = StreamingBeamSearch(char_vocabulary, DecoderOptions(frame_duration=0.05)).decode(
        log_probs_from_frames(frames, len(char_vocabulary))).words
    assert [w.text for w in words] == ["cat", "dog"]
    cat, dog = words
    assert (cat.start, cat.end) == pytest.approx((10 * 0.05, 14 * 0.05))  # first token .. past last
    assert (dog.start, dog.end) == pytest.approx((25 * 0.05, 28 * 0.05))
    assert cat.confidence == pytest.approx(0.9, abs=1e-4)
    assert dog.confidence == pytest.approx(0.4, abs=1e-4)  # its weakest letter


@pytest.mark.parametrize("bad, message", [
    (np.full((4, 29), np.nan, dtype=np.float32), "NaN"),
    (np.log(np.full((4, 30), 1 / 30, dtype=np.float32)), "29"),
    (np.zeros((0, 29), dtype=np.float32), "empty"),
    (np.zeros(29, dtype=np.float32), "29"),
    (np.zeros((4, 29), dtype=np.int64), "float"),
    (np.zeros((4, 29), dtype=np.float32), "log_softmax"),  # raw logits, not log-probs
])
def test_bad_input_raises_and_leaves_the_state_untouched(char_vocabulary, bad, message):
    log_probs = spelled(char_vocabulary, "good words")
    search = StreamingBeamSearch(char_vocabulary)
    search.advance(log_probs[:9])
    before = (search.partial(), search.state.frames, list(search.state.beams))
    with pytest.raises(ValueError, match=message):
        search.advance(bad)
    assert (search.partial(), search.state.frames, list(search.state.beams)) == before
    search.advance(log_probs[9:])
    assert search.finalize().text == "good words"


def test_memory_stays_bounded_on_a_long_stream(char_tokenizer, char_vocabulary):
    _, chunks = template_test_set(char_tokenizer, 60, seed=5)
    options = DecoderOptions(max_history_words=6)
    search = StreamingBeamSearch(char_vocabulary, options)
    live_prefixes = []
    for log_probs in chunks:  # ~7000 frames, ~400 words, never finalized
        search.advance(log_probs)
        best = search.state.beams[0][0].words
        assert len(search.state.beams) <= options.beam_size
        assert best is None or best.depth - search.state.committed_depth <= options.max_history_words + 4
        gc.collect()
        live_prefixes.append(sum(isinstance(o, Prefix) for o in gc.get_objects()))
    assert max(live_prefixes[30:]) < 3 * max(live_prefixes[:10])  # no growth with stream length
    committed = [w.text for w in search.state.committed]
    assert len(committed) > 300
    assert search.finalize().text.split()[:len(committed)] == committed  # nothing committed is lost


def test_an_underflowed_probability_of_zero_is_accepted(char_vocabulary):
    log_probs = spelled(char_vocabulary, "ok")
    log_probs[:, -1] = -np.inf  # log_softmax can give -inf for a probability that underflowed
    log_probs -= np.logaddexp.reduce(log_probs, axis=1, keepdims=True)
    assert StreamingBeamSearch(char_vocabulary).decode(log_probs).text == "ok"

"""Hotwords: a per-session list of words or phrases that the decoder favours."""
from __future__ import annotations

import numpy as np
import pytest

from decoders.beam_search import StreamingBeamSearch
from decoders.hotwords import HotwordScorer
from decoders.options import DecoderOptions
from decoders.synthetic import confusable_ids, synthesize_log_probs, template_test_set


def near_miss(char_tokenizer, text: str, wrong: str, right: str) -> np.ndarray:
    """Posteriors spelling `text` where letter `wrong` beats the `right` one (which is second)."""
    ids = char_tokenizer.encode(text)
    log_probs = synthesize_log_probs(ids, len(char_tokenizer.tokens), char_tokenizer.blank_id,
                                     np.random.default_rng(0), confusion=0.0)
    tokens = char_tokenizer.tokens
    for frame in np.flatnonzero(log_probs.argmax(axis=1) == tokens.index(right)):
        log_probs[frame, [tokens.index(wrong), tokens.index(right)]] = np.log([0.6, 0.35])
        log_probs[frame] -= np.logaddexp.reduce(log_probs[frame])
    return log_probs


def test_a_hotword_turns_a_near_miss_into_the_right_word(char_tokenizer, char_vocabulary, template_lm):
    log_probs = near_miss(char_tokenizer, "the farmer watched kubrick today", wrong="p", right="b")
    options = DecoderOptions()
    plain = StreamingBeamSearch(char_vocabulary, options, template_lm).decode(log_probs).text
    boosted = StreamingBeamSearch(char_vocabulary, options, template_lm,
                                  HotwordScorer(["Kubrick"], boost=options.hotword_boost))
    assert char_vocabulary.greedy(log_probs) == "the farmer watched kuprick today"
    assert "kubrick" not in plain.split()  # an unknown name the LM cannot help with
    assert boosted.decode(log_probs).text == "the farmer watched kubrick today"


def test_an_empty_hotword_list_changes_nothing(char_tokenizer, char_vocabulary, template_lm):
    _, log_probs = template_test_set(char_tokenizer, 20, seed=31, confusion=0.1)
    without = StreamingBeamSearch(char_vocabulary, DecoderOptions(), template_lm)
    empty = StreamingBeamSearch(char_vocabulary, DecoderOptions(), template_lm, HotwordScorer([]))
    assert not HotwordScorer(["", "  ", "?!"])
    assert [without.decode(x) for x in log_probs] == [empty.decode(x) for x in log_probs]


def test_each_word_of_a_phrase_earns_the_boost():
    scorer = HotwordScorer(["New York"], boost=2.0)
    gain, state = scorer.advance(scorer.start, "new")
    more, state = scorer.advance(state, "york")
    assert (gain, more) == (2.0, 2.0)
    assert scorer.end(state) == 0.0  # a whole phrase keeps its boost


def test_a_phrase_that_breaks_off_gives_its_boost_back():
    scorer = HotwordScorer(["new york"], boost=2.0)
    gain, state = scorer.advance(scorer.start, "new")
    loss, state = scorer.advance(state, "jersey")
    assert gain + loss == 0.0
    gain, state = scorer.advance(scorer.start, "new")
    assert gain + scorer.end(state) == 0.0  # the utterance ended mid-phrase


def test_a_break_off_can_start_the_phrase_again():
    scorer = HotwordScorer(["new york"], boost=2.0)
    _, state = scorer.advance(scorer.start, "new")
    delta, state = scorer.advance(state, "new")  # "new new york": the second "new" starts over
    assert delta == 0.0
    delta, state = scorer.advance(state, "york")
    assert delta == 2.0 and scorer.end(state) == 0.0


def test_unfinished_words_that_start_a_hotword_earn_part_of_the_boost():
    scorer = HotwordScorer(["kubrick", "kub"], boost=3.0)
    assert scorer.partial_bonus("ku") == pytest.approx(2.0)  # 2 of the 3 letters of "kub"
    assert scorer.partial_bonus("kubr") == pytest.approx(3.0 * 4 / 7)
    assert scorer.partial_bonus("x") is None


def test_boosts_must_be_positive():
    with pytest.raises(ValueError):
        HotwordScorer(["x"], boost=0.0)

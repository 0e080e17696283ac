"""Shallow fusion: the LM fixes acoustic confusions, the fusion formula is the documented one, both
vocabulary kinds work, and the best texts agree with pyctcdecode 0.5.0 on identical inputs."""
from __future__ import annotations

import logging
from collections.abc import Hashable
from pathlib import Path

import jiwer
import pytest
import sentencepiece

from bench.decoder_speed import pyctcdecode_decoder, pyctcdecode_texts
from decoders.beam_search import StreamingBeamSearch
from decoders.language_model import LanguageModel
from decoders.options import DecoderOptions
from decoders.synthetic import log_probs_from_frames, template_sentences, template_test_set
from decoders.vocabulary import Vocabulary
from models.tokenizer import SentencePieceTokenizer

BLANK = 0


class TableLM(LanguageModel):
    """A unigram LM with fixed ln-probs; its state is the last word, so end scores can depend on it."""

    def __init__(self, log_probs: dict[str, float], end: dict[str, float] | None = None,
                 unigrams: list[str] | None = None):
        super().__init__(log_probs if unigrams is None else unigrams)
        self.log_probs, self.end = log_probs, end or {}

    def start(self) -> Hashable:
        return "<s>"

    def score(self, state: Hashable, word: str) -> tuple[float, Hashable]:
        return self.log_probs.get(word, -20.0), word

    def end_score(self, state: Hashable) -> float:
        return self.end.get(state, 0.0)


def frames(vocabulary, *spec: dict[str | int, float]):
    """Frames given as {character or token id: probability}, a blank frame after each; ' ' is the
    word boundary."""
    def token(key: str | int) -> int:
        return key if isinstance(key, int) else vocabulary.tokens.index("▁" if key == " " else key)

    out = []
    for frame in spec:
        out += [{token(k): p for k, p in frame.items()}, {BLANK: .9}]
    return log_probs_from_frames(out, len(vocabulary))


def test_the_lm_fixes_confusions_greedy_decoding_keeps(char_tokenizer, char_vocabulary, template_lm):
    sentences, log_probs = template_test_set(char_tokenizer, 100, seed=21, confusion=0.1)
    search = StreamingBeamSearch(char_vocabulary, DecoderOptions(), template_lm)
    greedy_wer = jiwer.wer(sentences, [char_vocabulary.greedy(x) for x in log_probs])
    lm_wer = jiwer.wer(sentences, [search.decode(x).text for x in log_probs])
    print(f"greedy WER {greedy_wer:.3f}, with LM {lm_wer:.3f}")
    assert greedy_wer > 0.3  # the posteriors really are confused
    assert lm_wer < 0.02


def test_the_lm_picks_the_likelier_of_two_equally_heard_words(char_vocabulary):
    log_probs = frames(char_vocabulary, {"b": .45, "p": .45}, {"a": .9}, {"t": .9})
    likes_bat = TableLM({"bat": -1.0, "pat": -5.0})
    likes_pat = TableLM({"bat": -5.0, "pat": -1.0})
    assert StreamingBeamSearch(char_vocabulary, DecoderOptions(), likes_bat).decode(log_probs).text == "bat"
    assert StreamingBeamSearch(char_vocabulary, DecoderOptions(), likes_pat).decode(log_probs).text == "pat"


def test_out_of_vocabulary_words_pay_the_oov_penalty(char_vocabulary):
    log_probs = frames(char_vocabulary, {"k": .55, "c": .4}, {"a": .9}, {"t": .9})
    lm = TableLM({"cat": -3.0, "kat": -3.0}, unigrams=["cat"])  # same LM score, only "cat" listed
    assert StreamingBeamSearch(char_vocabulary).decode(log_probs).text == "kat"
    assert StreamingBeamSearch(char_vocabulary, DecoderOptions(), lm).decode(log_probs).text == "cat"
    no_penalties = DecoderOptions(oov_penalty=0.0, partial_word_penalty=0.0)
    assert StreamingBeamSearch(char_vocabulary, no_penalties, lm).decode(log_probs).text == "kat"


def test_beta_rewards_words(char_vocabulary):
    # "ab" or "a b": the boundary is as likely as not.
    log_probs = frames(char_vocabulary, {"a": .9}, {" ": .45, BLANK: .45}, {"b": .9})
    lm = TableLM({"a": -2.0, "b": -2.0, "ab": -4.0})
    def decode(beta):
        return StreamingBeamSearch(char_vocabulary, DecoderOptions(beta=beta), lm).decode(log_probs).text
    assert decode(beta=3.0) == "a b"
    assert decode(beta=-3.0) == "ab"


def test_finalize_adds_the_end_of_sentence_score(char_vocabulary):
    log_probs = frames(char_vocabulary, {"b": .45, "p": .45}, {"a": .9}, {"t": .9})
    assert StreamingBeamSearch(char_vocabulary, DecoderOptions(), TableLM({"bat": -1.0, "pat": -1.5})
                               ).decode(log_probs).text == "bat"  # without the end score, "bat" leads
    lm = TableLM({"bat": -1.0, "pat": -1.5}, end={"bat": -10.0})
    search = StreamingBeamSearch(char_vocabulary, DecoderOptions(), lm)
    search.advance(log_probs)
    assert search.partial().text == "pat"  # the partial already shows what the final will be:
    assert search.finalize().text == "pat"  # sentences rarely end in "bat"


def test_the_partial_once_speech_stops_is_the_final(char_vocabulary):
    """Partials rank hypotheses as the final does, so a caption is not rewritten a second after its
    words, when the endpoint fires: the last partial before the final equals it, words and times."""
    lm = TableLM({"bat": -1.0, "pat": -1.5, "a": -1.0}, end={"bat": -10.0})
    log_probs = frames(char_vocabulary, {"a": .9}, {" ": .9}, {"b": .45, "p": .45}, {"a": .9}, {"t": .9},
                       {BLANK: .95}, {BLANK: .95})
    search = StreamingBeamSearch(char_vocabulary, DecoderOptions(), lm)
    search.advance(log_probs)
    partial = search.partial()
    assert partial.text == "a pat"
    assert partial == search.finalize()


@pytest.fixture(scope="module")
def sentencepiece_tokenizer(tmp_path_factory) -> SentencePieceTokenizer:
    directory = tmp_path_factory.mktemp("spm")
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(template_sentences(2000, seed=3)))
    sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(directory / "sp"),
                                             vocab_size=120, model_type="bpe", minloglevel=2)
    return SentencePieceTokenizer(directory / "sp.model")  # blank appended last, as NeMo does


def test_sentencepiece_vocabularies_complete_words_at_word_starting_pieces(
        sentencepiece_tokenizer, template_lm):
    tokenizer = sentencepiece_tokenizer
    vocabulary = Vocabulary(tokenizer.tokens, tokenizer.blank_id)
    sentences, log_probs = template_test_set(tokenizer, 60, seed=22, confusion=0.0)
    plain = StreamingBeamSearch(vocabulary)
    assert [plain.decode(x).text for x in log_probs] == sentences
    sentences, log_probs = template_test_set(tokenizer, 60, seed=23, confusion=0.3)
    confused = [vocabulary.greedy(x) for x in log_probs]  # blank wins over some pieces
    fused = StreamingBeamSearch(vocabulary, DecoderOptions(), template_lm)
    assert jiwer.wer(sentences, [fused.decode(x).text for x in log_probs]) < 0.5 * jiwer.wer(sentences, confused)


def test_same_best_text_as_pyctcdecode_on_200_utterances(char_tokenizer, char_vocabulary,
                                                          template_lm, template_lm_dir: Path):
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    options = DecoderOptions(beam_size=16)
    _, log_probs = template_test_set(char_tokenizer, 200, seed=7, confusion=0.15)
    search = StreamingBeamSearch(char_vocabulary, options, template_lm)
    ours = [search.decode(x).text for x in log_probs]
    # pyctcdecode 0.5.0 with its empty-final-word scoring fixed (see bench/decoder_speed.py).
    reference = pyctcdecode_decoder(char_vocabulary, template_lm_dir, options, fix_empty_word=True)
    theirs = pyctcdecode_texts(reference, log_probs, options)
    assert sum(a == b for a, b in zip(ours, theirs)) >= 0.95 * len(log_probs)

"""Characters and sentencepiece behind one interface, with the '▁' word-boundary convention."""
from __future__ import annotations

import sentencepiece

from models.tokenizer import (BLANK, WORD_BOUNDARY, CharTokenizer, SentencePieceTokenizer,
                              normalize_text, read_tokens, write_tokens)

SENTENCES = [
    "the meeting starts at nine and the lecture follows after lunch",
    "streaming speech recognition gives captions while people talk",
    "please write down the action items before the next meeting",
    "the speaker said that topics change when sentences stop resembling each other",
] * 20


def test_normalize_text():
    assert normalize_text("Don’t STOP — it's 'café' time!\n") == "don't stop it's cafe time"
    assert normalize_text("  ...  ") == ""


def test_character_round_trip():
    tok = CharTokenizer()
    ids = tok.encode("Hello,  World's end")
    assert tok.tokens[tok.blank_id] == BLANK and tok.blank_id not in ids
    assert tok.tokens[ids[5]] == WORD_BOUNDARY
    assert tok.decode(ids) == "hello world's end"
    assert tok.decode([tok.blank_id, *ids, tok.blank_id]) == "hello world's end"


def test_tokens_file_round_trip(tmp_path):
    tok = CharTokenizer()
    write_tokens(tmp_path / "tokens.txt", tok.tokens)
    assert read_tokens(tmp_path / "tokens.txt") == tok.tokens


def train_sentencepiece(tmp_path) -> str:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES))
    prefix = str(tmp_path / "sp")
    sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=prefix, vocab_size=60,
                                             model_type="unigram", minloglevel=2)
    return prefix + ".model"


def test_sentencepiece_blank_last_as_nemo_does(tmp_path):
    tok = SentencePieceTokenizer(train_sentencepiece(tmp_path))
    assert tok.blank_id == 60 and tok.tokens[-1] == BLANK and len(tok.tokens) == 61
    ids = tok.encode("the meeting starts")
    assert tok.decode(ids) == "the meeting starts"
    # the shared convention: joined pieces with '▁' as spaces give the text
    assert "".join(tok.tokens[i] for i in ids).replace(WORD_BOUNDARY, " ").strip() == "the meeting starts"


def test_sentencepiece_blank_first(tmp_path):
    tok = SentencePieceTokenizer(train_sentencepiece(tmp_path), blank_id=0)
    ids = tok.encode("action items")
    assert tok.tokens[0] == BLANK and 0 not in ids
    assert tok.decode([0, *ids, 0]) == "action items"

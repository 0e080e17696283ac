"""The training text: spoken forms of numbers and dates, cleaning, and a stable disjoint split."""
from __future__ import annotations

import pytest

from models.corpus import (
    CorpusOptions,
    build_corpus,
    clean,
    is_heldout,
    meeting_file,
    read_sentences,
    templates,
)
from models.spoken import cardinal, is_speakable, ordinal, spoken_form, year
from models.tokenizer import CHARACTER_ALPHABET, normalize_text


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty two"), (100, "one hundred"),
    (115, "one hundred fifteen"), (1000, "one thousand"), (2048, "two thousand forty eight"),
    (1_000_000, "one million"), (3_000_250_017, "three billion two hundred fifty thousand seventeen")])
def test_cardinals(n, words):
    assert cardinal(n) == words


def test_ordinals_and_years():
    assert [ordinal(n) for n in (1, 2, 3, 5, 12, 20, 21, 100)] == [
        "first", "second", "third", "fifth", "twelfth", "twentieth", "twenty first", "one hundredth"]
    assert year(1999) == "nineteen ninety nine"
    assert year(2005) == "two thousand five"
    assert year(2026) == "twenty twenty six"
    assert year(1905) == "nineteen oh five"
    assert year(1900) == "nineteen hundred"


@pytest.mark.parametrize("written, spoken", [
    ("On March 3rd, 2026 at 10:30.", "On March third, twenty twenty six at ten thirty."),
    ("It costs $4.50 (15%).", "It costs four dollars fifty cents (fifteen percent)."),
    ("We raised $3.5 million.", "We raised three point five million dollars."),
    ("In the 1960s, 1,234 people came.", "In the nineteen sixties, one thousand two hundred thirty four people came."),
    ("Pi is 3.14, code 007.", "Pi is three point one four, code zero zero seven."),
    ("Due 2024-11-05 at 9:05.", "Due November fifth twenty twenty four at nine oh five."),
    ("Dr. Smith & Mr. Jones", "doctor Smith and mister Jones"),
    ("The train leaves at 7:00.", "The train leaves at seven o'clock."),
])
def test_spoken_form(written, spoken):
    assert spoken_form(written) == spoken
    assert is_speakable(spoken)


def test_unspeakable_sentences_are_dropped():
    options = CorpusOptions()
    assert clean("See http://example.com/x_y for details", options) is None  # '/' and ':' remain
    assert clean("Too short", options) is None
    assert clean(" ".join(["word"] * 40), options) is None
    assert clean("The NASA budget grew by 5%.", options) == "The nasa budget grew by five percent."


def test_every_written_sentence_becomes_the_tokenizer_alphabet():
    sentences = list(meeting_file()) + list(templates(500, seed=1))
    kept = [clean(s, CorpusOptions()) for s in sentences]
    assert sum(k is not None for k in kept) > 0.95 * len(sentences)
    for text in filter(None, kept):
        assert set(normalize_text(text)) <= set(CHARACTER_ALPHABET) | {" "}


def test_split_is_stable_and_disjoint(tmp_path):
    raw = {"meeting": list(meeting_file()) + list(templates(3000, seed=0)),
           "fortunes": ["The early bird gets the worm.", "The early bird gets the worm!"]}  # same words
    stats = build_corpus(tmp_path / "a", CorpusOptions(heldout_permille=100), raw)
    build_corpus(tmp_path / "b", CorpusOptions(heldout_permille=100), raw)
    for name in ("train.txt", "heldout.txt", "lm_train.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    train = {normalize_text(s) for s in read_sentences(tmp_path / "a" / "train.txt")}
    heldout = {normalize_text(s) for s in read_sentences(tmp_path / "a" / "heldout.txt")}
    assert train and heldout and not train & heldout
    assert 0.05 < len(heldout) / (len(train) + len(heldout)) < 0.15
    assert all(is_heldout(s, 100) for s in heldout) and not any(is_heldout(s, 100) for s in train)
    assert sum(normalize_text(s) == "the early bird gets the worm" for s in [*train, *heldout]) == 1
    lm = set(read_sentences(tmp_path / "a" / "lm_train.txt"))
    assert lm <= train and not lm & heldout
    assert stats["train"]["sentences"] == len(train)


def test_word_lists_stay_out_of_the_lm_text(tmp_path):
    raw = {"wordlist": ["apple banana cherry dates elder"], "meeting": ["The budget meeting starts at noon."]}
    build_corpus(tmp_path, CorpusOptions(heldout_permille=0), raw)
    assert read_sentences(tmp_path / "lm_train.txt") == ["the budget meeting starts at noon"]
    assert len(read_sentences(tmp_path / "train.txt")) == 2

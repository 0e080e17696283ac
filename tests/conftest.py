"""Shared fixtures for the decoder and LM tests: the character vocabulary and a template-corpus LM."""
from __future__ import annotations

from pathlib import Path

import pytest

from decoders.language_model import KenLMLanguageModel
from decoders.synthetic import build_template_lm
from decoders.vocabulary import Vocabulary
from models.tokenizer import CharTokenizer

LM_CORPUS_SEED = 1  # test utterances use other seeds, so the LM has not seen them verbatim


@pytest.fixture(scope="session")
def char_tokenizer() -> CharTokenizer:
    return CharTokenizer()


@pytest.fixture(scope="session")
def char_vocabulary(char_tokenizer: CharTokenizer) -> Vocabulary:
    return Vocabulary(char_tokenizer.tokens, char_tokenizer.blank_id)


@pytest.fixture(scope="session")
def template_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-gram KenLM built with `steno lm build`'s code from 3000 template sentences."""
    return build_template_lm(tmp_path_factory.mktemp("template_lm"), seed=LM_CORPUS_SEED)


@pytest.fixture(scope="session")
def template_lm(template_lm_dir: Path) -> KenLMLanguageModel:
    return KenLMLanguageModel.from_dir(template_lm_dir)

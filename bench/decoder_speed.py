"""Decoder benchmark: Steno's streaming beam search against pyctcdecode 0.5.0 on identical inputs.

Same synthetic posteriors (character vocabulary, realistic confusions), same KenLM model and unigram
list, same alpha, beta, beam width and pruning. Steno decodes in 8-frame chunks, as the server feeds
it; pyctcdecode decodes each utterance whole. Prints WERs, timings, and as its last line
`decoder_speedup=<x> parity=<n>/<m>` (parity: utterances where both give the same best text).

    python -m bench.decoder_speed [--utterances 200] [--beam 16] [--confusion 0.06] [--lm DIR]
    python -m bench.decoder_speed --model BUNDLE --manifest EVAL.jsonl [--utterances 300]

Without --model the posteriors are synthesised (peaked, with planted confusions) for sentences of a
template grammar and its LM; with --model they are a real acoustic model's, streamed over the
manifest's audio, decoded with the bundle's LM and tuned alpha/beta.

Parity is counted against pyctcdecode with one bug fixed (`fix_empty_word` below); parity with it as
shipped is printed too. Deliberate differences that remain: Steno keeps one hypothesis per prefix
with blank/non-blank scores where pyctcdecode keeps two beams (so at equal width Steno's beam holds
as many or more prefixes); pyctcdecode's `decode()` drops beams that share their last n-1 words,
Steno instead commits words older than `max_history_words`; hotwords differ (phrases with back-off,
hotword words exempt from the OOV penalty) but are not used here.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np

from decoders.beam_search import StreamingBeamSearch
from decoders.language_model import LM_FILENAME, UNIGRAMS_FILENAME, KenLMLanguageModel, tuned_options
from decoders.options import DecoderOptions
from decoders.synthetic import build_template_lm, template_test_set
from decoders.vocabulary import Vocabulary
from models.tokenizer import WORD_BOUNDARY, CharTokenizer, normalize_text

CHUNK_FRAMES = 8


def steno_decode(search: StreamingBeamSearch, log_probs: np.ndarray) -> str:
    for start in range(0, len(log_probs), CHUNK_FRAMES):
        search.advance(log_probs[start:start + CHUNK_FRAMES])
    return search.finalize().text


def pyctcdecode_decoder(vocabulary: Vocabulary, lm_dir: Path, options: DecoderOptions,
                        fix_empty_word: bool = False):
    """pyctcdecode over the same labels (blank '', boundary ' ') and the same KenLM files.

    `fix_empty_word`: pyctcdecode 0.5.0 closes a hypothesis that ends in a word boundary by scoring
    an empty word '' (as <unk>, plus its -10 unknown offset, plus beta); when merging final beams
    by text it keeps the first one's fields, so the penalty can land on the right hypothesis too.
    The fix scores only the end of sentence there, as Steno does; nothing else changes.
    """
    import kenlm
    from pyctcdecode.alphabet import Alphabet
    from pyctcdecode.constants import LOG_BASE_CHANGE_FACTOR
    from pyctcdecode.decoder import BeamSearchDecoderCTC
    from pyctcdecode.language_model import LanguageModel

    class FixedLanguageModel(LanguageModel):
        def score(self, prev_state, word, is_last_word=False):
            if word or not is_last_word:
                return super().score(prev_state, word, is_last_word)
            end = self._get_raw_end_score(prev_state) * LOG_BASE_CHANGE_FACTOR
            return self.alpha * end, prev_state

    labels = [" " if t == WORD_BOUNDARY else t for t in vocabulary.tokens]
    labels[vocabulary.blank_id] = ""
    unigrams = (lm_dir / UNIGRAMS_FILENAME).read_text().split()
    model_class = FixedLanguageModel if fix_empty_word else LanguageModel
    language_model = model_class(kenlm.Model(str(lm_dir / LM_FILENAME)), unigrams,
                                 alpha=options.alpha, beta=options.beta)
    return BeamSearchDecoderCTC(Alphabet.build_alphabet(labels), language_model)


def pyctcdecode_texts(decoder, log_probs: list[np.ndarray], options: DecoderOptions) -> list[str]:
    return [decoder.decode(x, beam_width=options.beam_size, beam_prune_logp=-options.beam_prune,
                           token_min_logp=options.token_prune_threshold) for x in log_probs]


def model_test_set(bundle: Path, manifest: Path, count: int) -> tuple[list[str], list[np.ndarray]]:
    """(reference texts, streamed log-probs) of the first `count` manifest items."""
    from models.evaluate import EvalOptions, Evaluator, read_items

    evaluator = Evaluator(EvalOptions(model=bundle, use_lm=False))
    items = read_items(manifest)[:count]
    log_probs = [np.concatenate(evaluator.stream_posteriors(evaluator.load_audio(it["path"]))) for it in items]
    return [normalize_text(it["text"]) for it in items], log_probs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=200)
    parser.add_argument("--beam", type=int, default=16)
    parser.add_argument("--lm", type=Path, help="LM directory (default: build one from the grammar)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--confusion", type=float, default=0.06, help="share of confused tokens")
    parser.add_argument("--model", type=Path, help="bundle whose encoder gives the posteriors (with --manifest)")
    parser.add_argument("--manifest", type=Path, help="JSONL manifest of audio + text, for --model")
    args = parser.parse_args(argv)
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = CharTokenizer()
        vocabulary = Vocabulary(tokenizer.tokens, tokenizer.blank_id)
        options = DecoderOptions(beam_size=args.beam)
        if args.model:
            lm_dir = args.lm or args.model / "lm"
            options = tuned_options(lm_dir, beam_size=args.beam)
            sentences, log_probs = model_test_set(args.model, args.manifest, args.utterances)
        else:
            lm_dir = args.lm or build_template_lm(Path(scratch))
            sentences, log_probs = template_test_set(tokenizer, args.utterances, args.seed, args.confusion)
        search = StreamingBeamSearch(vocabulary, options, KenLMLanguageModel.from_dir(lm_dir))
        frames = sum(len(x) for x in log_probs)

        shipped_decoder = pyctcdecode_decoder(vocabulary, lm_dir, options)
        ours, shipped, ours_s, theirs_s = [], [], 0.0, 0.0
        for x in log_probs:  # interleaved, CPU time: other load on the machine hits both alike
            start = time.process_time()
            ours.append(steno_decode(search, x))
            middle = time.process_time()
            shipped += pyctcdecode_texts(shipped_decoder, [x], options)
            ours_s, theirs_s = ours_s + middle - start, theirs_s + time.process_time() - middle
        fixed = pyctcdecode_texts(pyctcdecode_decoder(vocabulary, lm_dir, options, fix_empty_word=True),
                                  log_probs, options)

    greedy = [vocabulary.greedy(x) for x in log_probs]
    parity_shipped = sum(a == b for a, b in zip(ours, shipped))
    parity = sum(a == b for a, b in zip(ours, fixed))
    print(f"utterances={len(sentences)} frames={frames} beam={options.beam_size} "
          f"alpha={options.alpha} beta={options.beta}")
    print(f"WER greedy={jiwer.wer(sentences, greedy):.4f} steno={jiwer.wer(sentences, ours):.4f} "
          f"pyctcdecode={jiwer.wer(sentences, shipped):.4f} "
          f"pyctcdecode(empty-word fix)={jiwer.wer(sentences, fixed):.4f}")
    print(f"CPU time: steno {ours_s:.2f} s ({1e3 * ours_s / frames:.3f} ms/frame, 8-frame chunks), "
          f"pyctcdecode {theirs_s:.2f} s ({1e3 * theirs_s / frames:.3f} ms/frame)")
    for a, b, ref in zip(ours, fixed, sentences):
        if a != b:
            print(f"differs: steno={a!r} pyctcdecode(fixed)={b!r} reference={ref!r}")
    print(f"parity with pyctcdecode as shipped: {parity_shipped}/{len(sentences)}; "
          f"with its empty-word fix (below): {parity}/{len(sentences)}")
    print(f"decoder_speedup={theirs_s / ours_s:.2f} parity={parity}/{len(sentences)} "
          f"parity_shipped={parity_shipped}/{len(sentences)}")


if __name__ == "__main__":
    main()

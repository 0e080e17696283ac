"""The speaker model: the committed ONNX encoder and numpy front-end against resemblyzer's own,
and the tracker on real embeddings of TTS voices, silence and noise."""
from __future__ import annotations

import numpy as np
import pytest

from models.speaker import DEFAULT_MODEL, SpeakerEncoder, mel_filterbank, mel_frames, normalize_volume
from models.speaker_dialogues import available_voices, make_dialogue, synthesize
from streaming.speakers import SpeakerOptions, SpeakerTracker

RATE = 16000
SENTENCES = ["the old farmer painted a window yesterday", "did you see the green basket near the river",
             "anna and peter visited the market slowly before winter"]


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@pytest.fixture(scope="module")
def voices() -> list[str]:
    found = [v for v in ("flite:slt", "flite:awb", "espeak:en-gb-x-rp+m3") if v in available_voices()]
    if len(found) < 3:
        pytest.skip("needs flite and espeak-ng (apt-get install flite espeak-ng)")
    return found


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """A harmonic signal with a moving pitch and syllable-rate envelope (no TTS needed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.1 * wave * envelope + 0.003 * rng.normal(size=len(t))).astype(np.float32)


def test_the_model_file_is_committed_and_small():
    assert DEFAULT_MODEL.exists() and DEFAULT_MODEL.stat().st_size < 4_000_000


def test_numpy_front_end_matches_resemblyzer_librosa():
    librosa = pytest.importorskip("librosa")
    from models.speaker_export import import_resemblyzer
    audio = import_resemblyzer().audio
    assert np.allclose(mel_filterbank(), librosa.filters.mel(sr=16000, n_fft=400, n_mels=40), atol=1e-6)
    wav = speech_like(2.3, 0)
    ref, got = audio.wav_to_mel_spectrogram(wav), mel_frames(wav)
    assert ref.shape == got.shape
    assert np.abs(ref - got).max() <= 1e-4 * np.abs(ref).max()


def test_onnx_embeddings_match_resemblyzer_torch(encoder):
    pytest.importorskip("torch")
    from models.speaker_export import import_resemblyzer
    resemblyzer = import_resemblyzer()
    reference = resemblyzer.VoiceEncoder("cpu", verbose=False)
    for seconds, seed in [(0.6, 1), (2.0, 2), (4.7, 3)]:
        wav = speech_like(seconds, seed)
        expected = reference.embed_utterance(normalize_volume(wav))
        got = encoder.embed(wav)
        assert float(expected @ got) > 0.9999, seconds
        assert np.abs(expected - got).max() < 2e-3


def test_embeddings_separate_tts_voices(encoder, voices):
    emb = {v: encoder.embed_many([synthesize(v, s) for s in SENTENCES]) for v in voices}
    within = np.mean([float(1 - e[i] @ e[j]) for e in emb.values() for i in range(3) for j in range(i)])
    between = np.mean([float(1 - emb[a][i] @ emb[b][j]) for a in emb for b in emb if a < b
                       for i in range(3) for j in range(3)])
    assert within < SpeakerOptions.threshold < between


def test_one_voice_gives_exactly_one_speaker(encoder, voices):
    tracker = SpeakerTracker(encoder, SpeakerOptions())
    t = 0.0
    for k, sentence in enumerate(SENTENCES * 2 + ["yeah", "right"]):
        audio = synthesize(voices[0], sentence)
        assert tracker.tag(audio, t, k).speaker == "Speaker 1"
        t += len(audio) / RATE + 1
    assert len(tracker.clustering.clusters) == 1


def test_silence_gives_one_speaker_and_noise_does_not_open_speakers_endlessly(encoder):
    rng = np.random.default_rng(0)
    tracker = SpeakerTracker(encoder, SpeakerOptions())
    for k in range(6):
        tracker.tag(np.zeros(int(rng.uniform(0.5, 6) * RATE), np.float32), 10.0 * k, k)
    assert len(tracker.clustering.clusters) == 1
    noisy, counts = SpeakerTracker(encoder, SpeakerOptions(max_speakers=8)), []
    for k in range(45):   # white, brown and clicky noise at random levels and lengths
        n = int(rng.uniform(0.3, 5) * RATE)
        kind = k % 3
        noise = rng.normal(size=n) if kind == 0 else np.cumsum(rng.normal(size=n)) / 30 if kind == 1 \
            else (rng.random(n) < 0.01) * rng.normal(size=n) * 5
        noisy.tag((noise * 10 ** rng.uniform(-3, -0.5)).astype(np.float32), 10.0 * k, k)
        counts.append(len(noisy.clustering.clusters))
    # a few noise "speakers" (one per kind and level), then no more: the count saturates
    assert counts[-1] <= 6 and counts[25] == counts[-1]


def test_a_three_voice_dialogue_is_tagged_with_95_percent_of_words_right(encoder, voices):
    from bench.speaker_eval import run_tracker, turn_segments, words_right
    dialogue = make_dialogue(voices, seed=11, turns=8)
    tracker = SpeakerTracker(encoder, SpeakerOptions())
    hyp, _ = run_tracker(tracker, dialogue.audio, turn_segments(list(dialogue.turns)))
    right, words = words_right(list(dialogue.turns), hyp)
    assert words > 60 and right >= 0.95
    assert len(tracker.clustering.clusters) == 3

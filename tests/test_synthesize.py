"""Synthetic speech: every installed voice family speaks, augmentation keeps audio sane, the held-out
family never reaches training, and an interrupted run resumes without redoing items."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from models import augment, kokoro_voice, synthesize
from models.synthesize import (
    FESTIVAL_VOICES,
    installed_voices,
    plan,
    render,
    split_voices,
)

FAMILIES = ("espeak", "mbrola", "mbrola-accented", "flite", "festival", "piper", "kokoro", "pico")
TEXT = "The meeting starts at ten thirty."


def family_voice(family: str):
    voices = [v for v in installed_voices() if v.family == family]
    if not voices:
        pytest.skip(f"no {family} voice installed (make synth-deps)")
    return voices[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_installed_family_speaks(family):
    voice = family_voice(family)
    audio = render(voice, TEXT, speed=1.0, pitch=50)
    seconds = len(audio) / 16000
    assert audio.dtype == np.float32 and 0.8 < seconds < 6.0, (voice, seconds)
    assert augment.rms(audio) > 0.005
    assert len(render(voice, TEXT, speed=1.25)) < len(render(voice, TEXT, speed=0.8))


def test_held_out_speakers_never_train():
    train, held = split_voices("train"), split_voices("eval")
    assert not {v.speaker for v in train} & {v.speaker for v in held}
    assert not {v.speaker for v in train} & set(FESTIVAL_VOICES.values())  # flite kal/slt are festival's
    assert all(v.family != "festival" for v in train)
    assert {v.family for v in held} <= {"festival", "flite"}


def test_accented_mbrola_is_a_family_of_its_own():
    """Its voices joined after the mbrola draws were made: inside `mbrola` they would change those plans."""
    family_voice("mbrola-accented")
    english = split_voices("train", ("mbrola",))
    accented = split_voices("train", ("mbrola-accented",))
    assert {v.name for v in english} <= {"mb-us1", "mb-us2", "mb-us3", "mb-en1"}
    assert all(v.name.startswith("mb-") and v.name.endswith("-en") for v in accented)
    assert len({v.speaker for v in accented}) == len(accented) >= 8
    assert not {v.speaker for v in english} & {v.speaker for v in accented}


@pytest.fixture
def speech() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    envelope = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)  # syllable-like bursts
    return (0.3 * envelope * np.sin(2 * np.pi * 500 * t) + 0.1 * envelope * np.sin(2 * np.pi * 1500 * t) + 0.05 * envelope * rng.standard_normal(len(t))
            ).astype(np.float32)


@pytest.mark.parametrize("name", ["noise", "reverb", "telephone", "gain"])
def test_augmentation_keeps_length_and_level(speech, name):
    rng = np.random.default_rng(1)
    out = getattr(augment, name)(speech, rng)
    assert out.shape == speech.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.max(np.abs(out)) < 1.0
    if name != "gain":
        assert 0.3 < augment.rms(out) / augment.rms(speech) < 3.0


def test_telephone_is_band_limited(speech):
    out = augment.telephone(augment.noise(speech, np.random.default_rng(2), (0, 0)), np.random.default_rng(3))
    spectrum = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    assert spectrum[freqs > 4500].sum() < 1e-3 * spectrum.sum()


def test_mix_and_speed(speech):
    rng = np.random.default_rng(4)
    other = np.roll(speech, 5000) * 3
    mixed = augment.mix(speech, other, rng, (20.0, 20.0))
    assert mixed.shape == speech.shape
    assert abs(augment.rms(mixed - speech) / augment.rms(speech) - 0.1) < 0.02  # 20 dB below
    assert abs(len(augment.speed(speech, 1.1)) - len(speech) / 1.1) < 2


def test_plan_is_deterministic():
    voices = split_voices("train") or pytest.skip("no voices installed")
    texts = [f"sentence number {w}" for w in ("one", "two", "three", "four")]
    a, b = plan(texts, 0.01, voices, 3, "train"), plan(texts, 0.01, voices, 3, "train")
    assert a == b and len(a) > 5
    assert plan(texts, 0.01, voices, 4, "train") != a


def test_run_resumes_and_skips_done_items(tmp_path):
    family_voice("espeak")
    manifest = tmp_path / "m.jsonl"
    texts = ["The budget meeting starts at noon.", "Please send the slides by Friday.",
             "Speech recognition turns audio into text."]
    kwargs = {"texts": texts, "hours": 0.01, "families": ("espeak",), "progress": False}
    first = synthesize.run(manifest, **kwargs)
    assert first["written"] == first["planned"] > 4 and first["failed"] == 0
    lines = manifest.read_text().splitlines()
    record = json.loads(lines[0])
    audio, rate = sf.read(tmp_path / record["audio"])
    assert rate == 16000 and abs(len(audio) / rate - record["duration"]) < 0.01
    assert record["family"] == "espeak" and record["text"] == record["text"].lower()
    assert synthesize.run(manifest, **kwargs)["written"] == 0  # everything done: nothing redone
    manifest.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])  # killed while writing line 3
    resumed = synthesize.run(manifest, **kwargs)
    assert resumed["skipped"] == 2 and resumed["written"] == first["planned"] - 2
    ids = [json.loads(ln)["id"] for ln in manifest.read_text().splitlines() if ln.endswith("}")]
    assert sorted(set(ids)) == sorted({json.loads(ln)["id"] for ln in lines})
    with pytest.raises(RuntimeError, match="another plan"):
        synthesize.run(manifest, **{**kwargs, "hours": 0.02})


def test_kokoro_reads_espeak_phonemes_in_its_own_symbols():
    family_voice("kokoro")
    _, vocab, _ = kokoro_voice._model()
    text = "Judge Roy's choir sang out loud at eight, then the church bell rang for a further hour. Go home."
    phonemes = kokoro_voice.phonemize(text)
    assert set(phonemes) <= set(vocab), set(phonemes) - set(vocab)  # nothing silently dropped
    assert {"ʤ", "Y", "I", "W", "A", "O", "ʧ", "ɹ"} <= set(phonemes)  # diphthongs and affricates merged
    assert "ː" not in phonemes and "r" not in phonemes
    assert kokoro_voice.to_kokoro_phonemes("tʃˈɜːɹtʃ  bˈɛl") == "ʧˈɜɹʧ bˈɛl"


def test_kokoro_blends_are_new_voices_and_reproducible():
    family_voice("kokoro")
    _, _, styles = kokoro_voice._model()
    one, again = (kokoro_voice.style_for(kokoro_voice.BLEND, synthesize.text_rng("40:a sentence"), styles)
                  for _ in range(2))
    other = kokoro_voice.style_for(kokoro_voice.BLEND, synthesize.text_rng("41:a sentence"), styles)
    assert np.array_equal(one, again) and not np.allclose(one, other)
    assert all(not np.allclose(one, styles[v]) for v in kokoro_voice.VOICES)
    assert np.array_equal(kokoro_voice.style_for("jm_kumo", synthesize.text_rng("x"), styles), styles["jm_kumo"])


def test_pico_markup_carries_tempo_and_pitch_and_no_stray_tags():
    markup = synthesize._pico_markup("Tom & Jerry <3", speed=1.25, pitch=75)
    assert markup.startswith("<speed level='125'><pitch level='120'>") and markup.endswith("</pitch></speed>")
    inner = markup.removeprefix("<speed level='125'><pitch level='120'>").removesuffix("</pitch></speed>")
    assert "&" not in inner and "<" not in inner and ">" not in inner and "and" in inner
    assert "<pitch level='60'>" in synthesize._pico_markup("x", speed=1.0, pitch=25)


def test_kokoro_workers_on_a_fresh_cache_lose_no_items(tmp_path, monkeypatch):
    family_voice("kokoro")
    monkeypatch.setenv("KOKORO_JA_CACHE", str(tmp_path / "cache"))  # as on a new machine: model not yet assembled
    texts = ["The budget meeting starts at noon.", "Please send the slides by Friday."]
    stats = synthesize.run(tmp_path / "k.jsonl", texts, hours=0.006, workers=2, families=("kokoro",),
                           augment_scale=0, progress=False)
    assert stats["failed"] == 0 and stats["written"] == stats["planned"] > 4  # 2 chunks: both workers start together

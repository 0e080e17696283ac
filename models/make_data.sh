#!/usr/bin/env bash
# Rebuild the embedded model's data (models/TRAINING.md) in D (default /work/data/steno): the same
# corpus, seeds and sets every session, since /work/data does not survive a change of machine.
# Needs `make corpus-deps synth-deps` and the dev install (piper, kokoro). Resumable: `steno synth`
# appends to its manifest and skips what is there, so rerunning after a kill continues.
# Measured 2026-12-06 (twelfth session, a new 2-core AMD EPYC with AVX512-BF16, WORKERS=2, beside an
# evaluation run for the first half): ~63 minutes, of which the three kokoro draws (Kokoro-82M runs at
# ~0.5 RTF) took 13, ~17 and 19, the corpus, eval/valid, espeak/mbrola/flite and piper sets ~14, Pico 0.5.
set -euo pipefail
D=${1:-/work/data/steno}
WORKERS=${WORKERS:-2}
STENO=${STENO:-.venv/bin/steno}
mkdir -p "$D/synth"
[ -f "$D/corpus/train.txt" ] || "$STENO" corpus build -o "$D/corpus"
S="$D/synth"
T="$D/corpus/train.txt"
H="$D/corpus/heldout.txt"
# held out: unseen voices (festival, flite kal/slt) reading unseen text
"$STENO" synth "$S/eval.jsonl" --split eval --texts "$H" --hours 1 --augment-scale 0 --workers "$WORKERS"
"$STENO" synth "$S/valid.jsonl" --split eval --texts "$H" --hours 0.3 --seed 1 --workers "$WORKERS"
# training: espeak/mbrola/flite 7.8 h, piper 1.8 h, a second espeak/mbrola/flite draw 6.9 h
"$STENO" synth "$S/train.jsonl" --texts "$T" --hours 9 --families espeak mbrola flite --workers "$WORKERS"
"$STENO" synth "$S/piper.jsonl" --texts "$T" --hours 2.2 --seed 2 --families piper --workers "$WORKERS"
"$STENO" synth "$S/seed5.jsonl" --texts "$T" --hours 8 --seed 5 --families espeak mbrola flite --workers "$WORKERS"
cat "$S/train.jsonl" "$S/piper.jsonl" "$S/seed5.jsonl" > "$S/all5.jsonl"
# the eighth session's kokoro draw (500 items, 0.71 h), listed twice in all6 to weigh its voices up
"$STENO" synth "$S/kokoro.jsonl" --texts "$T" --hours 0.6343 --seed 9 --families kokoro --workers "$WORKERS"
cat "$S/all5.jsonl" "$S/kokoro.jsonl" "$S/kokoro.jsonl" > "$S/all6.jsonl"
# the ninth session's second kokoro draw (772 items, 1.06 h), also listed twice
"$STENO" synth "$S/kokoro2.jsonl" --texts "$T" --hours 0.95 --seed 10 --families kokoro --workers "$WORKERS"
cat "$S/all6.jsonl" "$S/kokoro2.jsonl" "$S/kokoro2.jsonl" > "$S/all7.jsonl"
# the tenth session's SVOX Pico draw (1 577 items, 1.98 h; both voices), listed once
"$STENO" synth "$S/pico.jsonl" --texts "$T" --hours 2 --seed 13 --families pico --workers "$WORKERS"
cat "$S/all7.jsonl" "$S/pico.jsonl" > "$S/all8.jsonl"
# the twelfth session's third kokoro draw (752 items, 1.06 h), listed twice
"$STENO" synth "$S/kokoro3.jsonl" --texts "$T" --hours 0.95 --seed 14 --families kokoro --workers "$WORKERS"
cat "$S/all8.jsonl" "$S/kokoro3.jsonl" "$S/kokoro3.jsonl" > "$S/all9.jsonl"
# the thirteenth session's mbrola-accented draw (16 new diphone speakers reading English with their
# accent; 4 735 items, 4.47 h, 90 s with 2 workers), listed once
"$STENO" synth "$S/mbrolax.jsonl" --texts "$T" --hours 6 --seed 15 --families mbrola-accented --workers "$WORKERS"
cat "$S/all9.jsonl" "$S/mbrolax.jsonl" > "$S/all10.jsonl"
# the fusion-tuning set: validation items whose text is not in the eval set
python3 - "$S" <<'EOF'
import json, sys
from pathlib import Path
s = Path(sys.argv[1])
eval_texts = {json.loads(line)["text"] for line in (s / "eval.jsonl").open()}
dev = [line for line in (s / "valid.jsonl").open() if json.loads(line)["text"] not in eval_texts]
(s / "dev.jsonl").write_text("".join(dev))
print(f"dev.jsonl: {len(dev)} items")
EOF
wc -l "$S"/*.jsonl

// Streaming sample-rate converter for the microphone worklet: windowed-sinc interpolation with
// the cut-off below the lower Nyquist rate (anti-aliasing when going down, e.g. 48 kHz -> 16 kHz).
// The kernel is tabulated at PHASES fractional offsets, each row normalised to unit DC gain.
// Pure module (no Web Audio), so a page can test it directly.

const PHASES = 256;
const ZERO_CROSSINGS = 10;  // of the sinc on each side of the centre

function blackman(x) {  // x in [-1, 1]
  return 0.42 + 0.5 * Math.cos(Math.PI * x) + 0.08 * Math.cos(2 * Math.PI * x);
}

export class Resampler {
  constructor(inRate, outRate) {
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate;                       // input samples per output sample
    this.passthrough = inRate === outRate;
    const cutoff = 0.46 * Math.min(1, outRate / inRate); // cycles per input sample
    this.half = Math.ceil(ZERO_CROSSINGS / (2 * cutoff)); // taps on each side
    const taps = 2 * this.half;
    this.table = new Float32Array((PHASES + 1) * taps);
    for (let p = 0; p <= PHASES; p++) {
      const frac = p / PHASES;
      let sum = 0;
      for (let k = 0; k < taps; k++) {
        const t = k - this.half + 1 - frac;             // tap k reads x[i0 - half + 1 + k]
        const arg = 2 * cutoff * t;
        const sinc = arg === 0 ? 1 : Math.sin(Math.PI * arg) / (Math.PI * arg);
        const w = Math.abs(t) >= this.half ? 0 : blackman(t / this.half);
        this.table[p * taps + k] = sinc * w;
        sum += sinc * w;
      }
      for (let k = 0; k < taps; k++) this.table[p * taps + k] /= sum;
    }
    // Input history: `half` zeros first, so the first output sample is centred on input sample 0.
    this.buffer = new Float32Array(4096 + taps);
    this.filled = this.half;
    this.position = this.half;                          // input index of the next output sample
  }

  // Input block (Float32Array) -> the output samples it completes (Float32Array).
  process(input) {
    if (this.passthrough) return Float32Array.from(input);
    if (this.filled + input.length > this.buffer.length) {
      const bigger = new Float32Array(2 * (this.filled + input.length));
      bigger.set(this.buffer.subarray(0, this.filled));
      this.buffer = bigger;
    }
    this.buffer.set(input, this.filled);
    this.filled += input.length;
    const taps = 2 * this.half, x = this.buffer, table = this.table;
    const count = Math.max(0, Math.ceil((this.filled - this.half - this.position) / this.step));
    const out = new Float32Array(count);
    let pos = this.position;
    for (let n = 0; n < count; n++) {
      const i0 = Math.floor(pos);
      const row = Math.round((pos - i0) * PHASES) * taps;
      const first = i0 - this.half + 1;
      let acc = 0;
      for (let k = 0; k < taps; k++) acc += x[first + k] * table[row + k];
      out[n] = acc;
      pos += this.step;
    }
    // Keep what later outputs still read: from `half` samples before the next position.
    const drop = Math.max(0, Math.floor(pos) - this.half);
    x.copyWithin(0, drop, this.filled);
    this.filled -= drop;
    this.position = pos - drop;
    return out;
  }
}

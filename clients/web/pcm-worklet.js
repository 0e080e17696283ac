// AudioWorklet processor: microphone input -> mono -> 16 kHz -> s16le frames posted to the page,
// each with its level (RMS and peak, 0..1) for the meter. Runs on the audio rendering thread.
import { Resampler } from "./resampler.js";

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, frameMs = 100 } = options.processorOptions || {};
    this.resampler = new Resampler(sampleRate, targetRate);  // `sampleRate`: the context's rate
    this.frameLength = Math.round((targetRate * frameMs) / 1000);
    this.frame = new Int16Array(this.frameLength);
    this.fill = 0;
    this.sumSquares = 0;
    this.peak = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;  // no input connected (yet)
    let mono = channels[0];
    if (channels.length > 1) {
      mono = new Float32Array(mono.length);
      for (const channel of channels) for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / channels.length;
    }
    const samples = this.resampler.process(mono);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      this.sumSquares += s * s;
      this.peak = Math.max(this.peak, Math.abs(s));
      this.frame[this.fill++] = s < 0 ? s * 32768 : s * 32767;
      if (this.fill === this.frameLength) this.flush();
    }
    return true;
  }

  flush() {
    const pcm = this.frame.buffer;
    this.port.postMessage({ pcm, rms: Math.sqrt(this.sumSquares / this.fill), peak: this.peak }, [pcm]);
    this.frame = new Int16Array(this.frameLength);
    this.fill = 0;
    this.sumSquares = 0;
    this.peak = 0;
  }
}

registerProcessor("pcm-capture", PcmCapture);

// The microphone: getUserMedia -> AudioContext at the device's rate -> the pcm-capture
// AudioWorklet (mono, resampled to 16 kHz, 100 ms s16le frames) -> onFrame(arrayBuffer, level).

export const SAMPLE_RATE = 16000;
export const FRAME_MS = 100;

export class Microphone {
  constructor(onFrame) {
    this.onFrame = onFrame;
  }

  async start() {
    if (!navigator.mediaDevices || !window.isSecureContext) {
      throw new Error("this page is not a secure origin: browsers give the microphone only to https:// "
        + "pages or http://localhost (start the server with --certfile/--keyfile)");
    }
    // The recogniser wants the raw signal: the browser's voice processing is switched off.
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule(new URL("pcm-worklet.js", import.meta.url));
    this.source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "pcm-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { targetRate: SAMPLE_RATE, frameMs: FRAME_MS },
    });
    this.node.port.onmessage = ({ data }) => this.onFrame(data.pcm, data);
    // The worklet writes silence; connecting it to the destination keeps the graph pulling it.
    this.source.connect(this.node).connect(this.context.destination);
    if (this.context.state !== "running") await this.context.resume();
    const track = this.stream.getAudioTracks()[0];
    this.label = track ? track.label : "";
    this.deviceRate = this.context.sampleRate;
  }

  async stop() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    if (this.node) this.node.port.onmessage = null;
    if (this.context) await this.context.close();
    this.stream = this.context = this.node = this.source = null;
  }
}

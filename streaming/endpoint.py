"""Endpointing: when does the current utterance become a final segment?

Rules, checked after every chunk (so a final comes at most one chunk after its rule fires):
1. speech then `silence_after_speech` seconds of trailing non-speech -> final.
   1.0 s: sherpa-onnx uses 1.2 s; captions feel slow past a second, and shorter cuts split
   sentences at ordinary pauses.
2. `silence_without_speech` seconds with no speech at all -> reset without a final (2.4 s, as
   sherpa-onnx), so long silences do not grow the decoder's state.
3. `max_utterance` seconds -> final regardless (20 s, as sherpa-onnx), so a speaker who never pauses
   still gets finals, and persisted notes never lag far behind.
A frame is speech when its most likely CTC token is not blank.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EndpointOptions:
    silence_after_speech: float = 1.0
    silence_without_speech: float = 2.4
    max_utterance: float = 20.0


@dataclass
class EndpointState:
    frames: int = 0            # frames in the current utterance
    speech_frames: int = 0
    trailing_silence: int = 0  # frames since the last speech frame


class Endpointer:
    def __init__(self, options: EndpointOptions, frame_duration: float, blank_id: int):
        self.options, self.frame_duration, self.blank_id = options, frame_duration, blank_id
        self.state = EndpointState()
        self.rule = "end_of_audio"  # the rule that made the last "final": silence | max_length

    def update(self, log_probs: np.ndarray) -> str | None:
        """Account for new frames; returns "final", "reset" or None."""
        speech = np.flatnonzero(log_probs.argmax(axis=1) != self.blank_id)
        s, n = self.state, len(log_probs)
        s.frames += n
        s.speech_frames += len(speech)
        s.trailing_silence = n - 1 - speech[-1] if len(speech) else s.trailing_silence + n
        silence = s.trailing_silence * self.frame_duration
        if s.speech_frames and silence >= self.options.silence_after_speech:
            self.rule = "silence"
            return "final"
        if not s.speech_frames and silence >= self.options.silence_without_speech:
            return "reset"
        if s.frames * self.frame_duration >= self.options.max_utterance:
            self.rule = "max_length"
            return "final" if s.speech_frames else "reset"
        return None

    def reset(self) -> None:
        self.state = EndpointState()
        self.rule = "end_of_audio"

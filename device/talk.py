"""Talk: what someone watching live says, played on the doorbell's speaker.

Audio goes one way only, from the hub to the door: the doorbell's microphone is never opened.
The hub sends 20 ms slices of 16 kHz mono PCM (:class:`~porch.core.wire.TalkPacket`) while a
viewer talks; a pause of :data:`IDLE_S` ends the talk and closes the output, so the sound
device (or the file) is only held while someone speaks.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import threading
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from porch.core.config import SpeakerSettings
from porch.core.wire import TALK_RATE, TalkPacket

log = logging.getLogger(__name__)
IDLE_S = 0.5
"""Silence from the hub this long ends a talk."""
QUEUE_PACKETS = 50
"""About a second of audio; beyond that the speaker is behind and packets are dropped."""


class AudioOutput(Protocol):
    def write(self, pcm: bytes) -> None: ...

    def close(self) -> None: ...


class AplayOutput:
    """The Pi's sound output through ALSA's ``aplay`` (alsa-utils, on Raspberry Pi OS)."""

    def __init__(self, device: str):
        command = shutil.which("aplay")
        if command is None:
            raise OSError("aplay is not installed (apt install alsa-utils)")
        self._process = subprocess.Popen(
            [command, "-q", "-D", device, "-t", "raw", "-f", "S16_LE", "-c", "1",
             "-r", str(TALK_RATE)],
            stdin=subprocess.PIPE,
        )  # fmt: skip
        self.returncode: int | None = None

    def write(self, pcm: bytes) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(pcm)
        self._process.stdin.flush()

    def close(self) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.close()
            self.returncode = self._process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self.returncode = self._process.wait()
        if self.returncode:
            raise OSError(f"aplay exited with status {self.returncode}")


class WavOutput:
    """A WAV file per talk, replacing the last one when it is complete (the simulated
    doorbell has no speaker; the file is what it would have played)."""

    def __init__(self, path: Path):
        self.path = path
        self._partial = path.with_name(path.name + ".partial")
        self._wav = wave.open(str(self._partial), "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(TALK_RATE)

    def write(self, pcm: bytes) -> None:
        self._wav.writeframes(pcm)

    def close(self) -> None:
        self._wav.close()
        os.replace(self._partial, self.path)


def output_factory(settings: SpeakerSettings, data_dir: Path) -> Callable[[], AudioOutput] | None:
    """How to open the configured speaker for one talk; None when there is none."""
    if settings.output == "alsa":
        return lambda: AplayOutput(settings.alsa_device)
    if settings.output == "wav":
        path = data_dir / settings.wav_path
        return lambda: WavOutput(path)
    return None


class TalkPlayer:
    """Plays talk packets in order on a thread of its own, opening the output for each talk."""

    def __init__(self, open_output: Callable[[], AudioOutput]):
        self._open_output = open_output
        self._queue: queue.Queue[TalkPacket | None] = queue.Queue(QUEUE_PACKETS)
        self._thread = threading.Thread(target=self._run, name="talk", daemon=True)
        self.played = 0
        """Packets played so far (read by tests)."""
        self.dropped = 0
        self.talks = 0
        """Talks played to their end so far."""
        self.failed = 0
        """Talks lost because the speaker failed."""
        self._thread.start()

    def on_packet(self, packet: TalkPacket) -> None:
        """Called from paho's thread: queue the packet, or drop it if the speaker lags."""
        try:
            self._queue.put_nowait(packet)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        output: AudioOutput | None = None
        broken = False  # the output failed: skip the rest of this talk (no error per slice)
        last_seq = -1
        while True:
            try:
                packet = self._queue.get(timeout=IDLE_S)
            except queue.Empty:  # a pause: the talk is over
                if output is not None:
                    self._finish(output)
                if broken:
                    self.failed += 1
                output, broken, last_seq = None, False, -1
                continue
            if packet is None:  # closing
                if output is not None:
                    self._finish(output)
                return
            if broken or packet.seq <= last_seq:  # late or repeated: its moment has passed
                continue
            last_seq = packet.seq
            try:
                if output is None:
                    output = self._open_output()
                    log.info("talk from the hub: playing")
                output.write(packet.pcm)
                self.played += 1
            except OSError as exc:
                log.error("cannot play talk: %s", exc)
                output, broken = None, True

    def _finish(self, output: AudioOutput) -> None:
        try:
            output.close()
        except OSError as exc:
            log.error("cannot finish the talk output: %s", exc)
        self.talks += 1
        log.info("talk from the hub: ended")

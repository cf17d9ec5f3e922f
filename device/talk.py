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
import re
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
APLAY_BUFFER_US = 120_000
"""ALSA buffer aplay asks for, µs: six 20 ms packets. Its default is up to 0.5 s, which
would put that much delay between a word and the door."""
APLAY_START_US = 60_000
"""aplay starts playing once this much is buffered (by default, once the buffer is full):
60 ms of sound behind the voice, and 60 ms of room for packets that come late over Wi-Fi
before the speaker runs dry."""
APLAY_PERIOD_US = 20_000
CARDS = Path("/proc/asound/cards")
_CARD_LINE = re.compile(r"^\s*\d+\s+\[(?P<id>[^\]\s]+)\s*\]:\s*(?P<name>.*)$")


def find_card(cards_text: str, wanted: str) -> str | None:
    """The id of the first card in ``/proc/asound/cards`` text whose id or name contains
    ``wanted`` (case-blind). Card numbers move (HDMI audio is card 0 or 1, a Pi 5's amp card
    2), names don't."""
    for line in cards_text.splitlines():
        match = _CARD_LINE.match(line)
        if match and wanted.lower() in (match["id"] + " " + match["name"]).lower():
            return match["id"]
    return None


def alsa_device(settings: SpeakerSettings, cards: Path = CARDS) -> str:
    """The ALSA device to play on: ``plughw`` on the named card (resampling 16 kHz mono to
    what the amplifier takes), the configured device, or ALSA's default when none is found."""
    if settings.alsa_device != "auto":
        return settings.alsa_device
    try:
        card = find_card(cards.read_text(), settings.alsa_card)
    except OSError:
        card = None
    if card is None:
        log.warning("no sound card named %r: talk plays on ALSA's default", settings.alsa_card)
        return "default"
    return f"plughw:CARD={card},DEV=0"


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
            [command, "-D", device, "-t", "raw", "-f", "S16_LE", "-c", "1",
             "-r", str(TALK_RATE), f"--buffer-time={APLAY_BUFFER_US}",
             f"--period-time={APLAY_PERIOD_US}", f"--start-delay={APLAY_START_US}"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self.returncode: int | None = None
        self.underruns = 0
        """Times the speaker ran dry (packets late): each is logged."""
        self._said = threading.Thread(target=self._read_stderr, name="aplay", daemon=True)
        self._said.start()

    def _read_stderr(self) -> None:
        """aplay's messages: its header is not news; an underrun is counted and logged."""
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            line = raw.decode(errors="replace").strip()
            if "underrun" in line:
                self.underruns += 1
                log.warning("the speaker ran dry (talk packets came late): %s", line)
            elif line and not line.startswith("Playing "):
                log.warning("aplay: %s", line)

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
        self._said.join(timeout=5)
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
        device = alsa_device(settings)
        return lambda: AplayOutput(device)
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

"""Talk: from a sound at the browser's microphone to the doorbell's speaker.

    .venv/bin/python bench/talk_latency.py [--beeps 30]

Headless Chromium opens the live page and turns Talk on; its microphone is a Web Audio
graph (getUserMedia is replaced before the page loads) that plays 1 kHz beeps at known
times. The sound goes the real way: Chromium's WebRTC (Opus) → hub (aiortc decodes,
resamples to 16 kHz) → MQTT → the doorbell agent's player, whose output notes when each
beep's first loud sample arrives. Hub, broker, agent and browser all run on this machine,
so one clock serves both ends.

* Mouth to speaker: beep start in the browser → its first loud sample handed to the
  speaker (the speaker's own buffer, a few ms with aplay, comes on top).
* Split, in the same run: mouth → the hub's relay publishing the slice (browser capture,
  Opus, WebRTC, aiortc's jitter buffer and decoder, resampling), and hub → speaker (MQTT
  and the agent's queue) as the baseline of what the doorbell side adds.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from harness import loopback_home
from playwright.sync_api import sync_playwright
from press_latency import percentile

from porch.core.config import SpeakerSettings
from porch.core.wire import TALK_RATE, TalkPacket
from porch.device.talk import TalkPlayer
from tests.support.browser import launch_chromium, sign_in, wait_in_page
from tests.support.common import wait_for
from tests.support.device import device_config, run_agent

LOUD = 3000  # a sample this loud (of 32767) is a beep, not Opus's or the resampler's noise
BEEP_S = 0.2
MICROPHONE = """
  const context = new AudioContext();
  const out = context.createMediaStreamDestination();
  const tone = context.createOscillator();
  const gain = context.createGain();
  tone.frequency.value = 1000;
  gain.gain.value = 0;
  tone.connect(gain).connect(out);
  tone.start();
  window.beeps = [];
  window.beep = () => {
    const at = context.currentTime + 0.1;
    gain.gain.setValueAtTime(0.8, at);
    gain.gain.setValueAtTime(0, at + BEEP_S);
    const stamp = context.getOutputTimestamp();
    window.beeps.push(performance.timeOrigin + stamp.performanceTime
                      + (at - stamp.contextTime) * 1000);
  };
  navigator.mediaDevices.getUserMedia = async () => { await context.resume(); return out.stream; };
""".replace("BEEP_S", str(BEEP_S))


class OnsetOutput:
    """The speaker's stand-in: notes the wall time of each beep's first loud sample."""

    def __init__(self, onsets: list[float]):
        self._onsets = onsets
        self._quiet_since = 0

    def write(self, pcm: bytes) -> None:
        arrived = time.time()
        samples = np.abs(np.frombuffer(pcm, "<i2").astype(int))
        loud = np.flatnonzero(samples > LOUD)
        if len(loud) and self._quiet_since >= TALK_RATE * BEEP_S:
            # The slice's last sample is the newest: the first loud one is older by the rest.
            self._onsets.append(arrived - (len(samples) - loud[0]) / TALK_RATE)
        self._quiet_since = (
            len(samples) - 1 - loud[-1] if len(loud) else (self._quiet_since + len(samples))
        )

    def close(self) -> None:
        pass


class HubOnsets:
    """The baseline: the same onsets as the hub's relay publishes the slices."""

    def __init__(self, publish):
        self.onsets: list[float] = []
        self._output = OnsetOutput(self.onsets)
        self._publish = publish
        self._lock = threading.Lock()

    def __call__(self, message) -> None:
        if isinstance(message, TalkPacket):
            with self._lock:
                self._output.write(message.pcm)
        self._publish(message)


def pair(beeps: list[float], onsets: list[float]) -> dict[float, float]:
    """Each beep's delay to the first onset after it, ms (beeps never heard are left out)."""
    delays = {}
    for beep in beeps:
        later = [o for o in onsets if o >= beep - 0.005]
        if later and later[0] - beep < 1.0:
            delays[beep] = (later[0] - beep) * 1000
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beeps", type=int, default=30)
    args = parser.parse_args()
    with loopback_home() as (tmp, broker, hub):
        at_hub = HubOnsets(hub.live._publish)
        hub.live._publish = at_hub
        config = device_config(tmp, broker, speaker=SpeakerSettings(output="wav"))
        speaker_onsets: list[float] = []
        with run_agent(config) as agent:
            agent.talk.close()
            agent.talk = TalkPlayer(lambda: OnsetOutput(speaker_onsets))
            wait_for(lambda: hub.live.has_speaker("front-door"), what="the speaker")
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page()
                page.add_init_script(MICROPHONE)
                sign_in(page, hub.url, "owner")
                page.goto(hub.url + "/live/front-door")
                wait_in_page(page, "window.porchLive && window.porchLive.firstFrameAt")
                page.click("#talk")
                page.wait_for_selector("#talk[aria-pressed=true]")
                page.wait_for_timeout(1000)  # the first beep after the connection settled
                for _ in range(args.beeps):
                    page.evaluate("beep()")
                    page.wait_for_timeout(700)
                beeps = [b / 1000 for b in page.evaluate("window.beeps")]
                browser.close()
    speaker = pair(beeps, speaker_onsets)
    relay = pair(beeps, at_hub.onsets)
    print(f"{len(beeps)} beeps; heard at the speaker {len(speaker)}, at the hub {len(relay)}")
    hop = {b: speaker[b] - relay[b] for b in speaker.keys() & relay.keys()}
    for label, delays in (("mouth → speaker", speaker), ("mouth → hub publishes", relay),
                          ("hub → speaker (baseline)", hop)):  # fmt: skip
        if delays:
            ms = list(delays.values())
            print(
                f"  {label:<26} p50 {percentile(ms, 50):6.1f} ms"
                f"   p95 {percentile(ms, 95):6.1f} ms   max {max(ms):6.1f} ms"
            )


if __name__ == "__main__":
    main()

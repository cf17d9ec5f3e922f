"""Talk: a viewer's microphone plays on the doorbell's speaker; nothing comes back."""

from __future__ import annotations

import asyncio
import threading
import wave

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from porch.core.config import SpeakerSettings
from porch.core.wire import TALK_RATE
from tests.e2e.test_live import PLAYING, aiortc_offer
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium, sign_in, wait_in_page
from tests.support.common import TIMEOUT, wait_for
from tests.support.device import device_config, run_agent
from tests.support.hub import PASSWORD, api, start_hub

TONE_HZ = 440.0


def write_tone(path, seconds: float = 4.0, rate: int = 48000) -> None:
    """What the browser's fake microphone says: a 440 Hz tone, half a second on, half off
    (a steady tone would be taken for noise and suppressed)."""
    t = np.arange(int(seconds * rate)) / rate
    gate = (t % 1.0) < 0.5
    samples = (0.5 * 32767 * np.sin(2 * np.pi * TONE_HZ * t) * gate).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def power_near(samples: np.ndarray, hz: float, rate: int = TALK_RATE) -> float:
    """Spectral power within 20 Hz of ``hz``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[np.abs(freqs - hz) < 20].sum())


@pytest.fixture
def doorbell_with_speaker(tmp_path, broker, mock_pins):
    hub = start_hub(tmp_path / "hub", broker)
    for role in ("owner", "member"):
        hub.accounts.add_user(role, PASSWORD, role)
    config = device_config(tmp_path, broker, speaker=SpeakerSettings(output="wav"))
    with run_agent(config) as agent:
        wait_for(lambda: hub.live.has_speaker("front-door"), what="the hub to know the speaker")
        yield hub, agent, config.data_dir / config.speaker.wav_path
    hub.stop()


@needs_chromium
def test_the_viewers_voice_plays_on_the_doorbell(doorbell_with_speaker, tmp_path):
    from playwright.sync_api import sync_playwright

    hub, agent, wav_path = doorbell_with_speaker
    tone = tmp_path / "tone.wav"
    write_tone(tone)
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={tone}"]  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        sign_in(page, hub.url, "member")
        page.goto(hub.url + "/live/front-door")
        wait_in_page(page, PLAYING, timeout=TIMEOUT)
        assert agent.talk.played == 0, "nothing plays before the Talk button"

        page.click("#talk")
        page.wait_for_selector("#talk[aria-pressed=true]", timeout=TIMEOUT * 1000)
        wait_for(lambda: agent.talk.played >= 150, what="three seconds of talk at the door")
        page.click("#talk")
        page.wait_for_selector("#talk[aria-pressed=false]", timeout=TIMEOUT * 1000)
        # The pause ends the talk: the speaker's file is complete once the audio stopped.
        wait_for(lambda: agent.talk.talks == 1 and wav_path.exists(), what="the talk to end")
        browser.close()

    with wave.open(str(wav_path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (TALK_RATE, 1, 2)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(float)
    assert len(samples) >= 3 * TALK_RATE
    # The loudest half second is the tone the browser's microphone heard.
    window = TALK_RATE // 2
    loudness = [np.sqrt(np.mean(samples[i : i + window] ** 2))
                for i in range(0, len(samples) - window, window // 4)]  # fmt: skip
    start = int(np.argmax(loudness)) * (window // 4)
    assert max(loudness) > 1000, f"the talk is silent (RMS {max(loudness):.0f})"
    assert abs(dominant_hz(samples[start : start + window], TALK_RATE) - TONE_HZ) < 15
    assert hub.live.talk_sent["front-door"] >= agent.talk.played


def test_a_doorbell_without_a_speaker_is_not_talked_to(tmp_path, broker, mock_pins):
    """The hub answers the offer's audio as inactive, and the page shows no Talk button."""
    hub = start_hub(tmp_path / "hub", broker)
    hub.accounts.add_user("owner", PASSWORD, "owner")
    with run_agent(device_config(tmp_path, broker)) as agent:
        wait_for(agent.link.connected.is_set, what="the device")
        wait_for(lambda: hub.devices(), what="the hub to know the device")
        assert not hub.live.has_speaker("front-door") and agent.talk is None
        page = api(hub, "owner", "GET", "/live/front-door")
        assert page.status_code == 200 and 'id="talk"' not in page.text
        offer = {"type": "offer", "sdp": aiortc_offer(audio=True)}
        answer = api(hub, "owner", "POST", "/api/devices/front-door/live", json=offer)
        assert answer.status_code == 201, answer.text
        assert "a=inactive" in answer.json()["sdp"].split("m=audio")[1]
    hub.stop()


class Tone(AudioStreamTrack):
    """A microphone that hums at ``hz`` (aiortc's paced 8 kHz frames, filled with a sine)."""

    def __init__(self, hz: float):
        super().__init__()
        self.hz = hz

    async def recv(self):
        frame = await super().recv()
        n = np.arange(frame.pts, frame.pts + frame.samples)
        tone = (0.5 * 32767 * np.sin(2 * np.pi * self.hz * n / frame.sample_rate)).astype("<i2")
        frame.planes[0].update(tone.tobytes())
        return frame


class Talker:
    """A viewer made with aiortc on a loop of its own: watches, and talks at ``hz``."""

    def __init__(self, loop, hub, username: str, hz: float):
        self._loop = loop
        self._run(self._open(hub, username, hz))

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(TIMEOUT)

    async def _open(self, hub, username: str, hz: float) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver(Tone(hz), direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"type": "offer", "sdp": self.pc.localDescription.sdp}
        answer = await asyncio.to_thread(
            api, hub, username, "POST", "/api/devices/front-door/live", json=offer
        )
        assert answer.status_code == 201, answer.text
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer.json()["sdp"], type="answer")
        )

    def close(self) -> None:
        self._run(self.pc.close())


def test_one_person_talks_at_a_time(doorbell_with_speaker):
    hub, agent, wav_path = doorbell_with_speaker
    hub.accounts.add_user("second", PASSWORD, "member")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        first = Talker(loop, hub, "member", 440)
        wait_for(lambda: agent.talk.played >= 25, what="the first talker at the door")
        second = Talker(loop, hub, "second", 880)  # talks over the first
        wait_for(lambda: len(hub.live.viewers("front-door")) == 2, what="both viewers")
        wait_for(lambda: agent.talk.played >= 100, what="more of the first talker")
        first.close()  # the second takes over after a second of quiet
        wait_for(lambda: agent.talk.talks == 1, what="the first talk to end")
        with wave.open(str(wav_path)) as wav:
            heard = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(float)
        assert power_near(heard, 880) < 0.01 * power_near(heard, 440), "both at once"
        wait_for(lambda: agent.talk.played >= 150, what="the second talker at the door")
        second.close()
        wait_for(lambda: agent.talk.talks == 2, what="the second talk to end")
        with wave.open(str(wav_path)) as wav:
            heard = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(float)
        assert power_near(heard, 440) < 0.01 * power_near(heard, 880)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=TIMEOUT)

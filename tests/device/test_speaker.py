"""The doorbell's speaker: talk packets played in order through the real aplay (into ALSA's
null device) or into a WAV file, a speaker that fails, the amplifier found by name."""

from __future__ import annotations

import os
import wave

import numpy as np

from porch.core.config import SpeakerSettings
from porch.core.wire import TalkPacket
from porch.device.talk import (
    APLAY_BUFFER_US,
    APLAY_START_US,
    AplayOutput,
    TalkPlayer,
    WavOutput,
    alsa_device,
    find_card,
)
from tests.support.common import wait_for


def packets(seqs, samples: int = 320):
    return [TalkPacket("front-door", seq, np.full(samples, 1000, "<i2").tobytes()) for seq in seqs]


def test_talk_plays_through_aplay_in_order_and_ends_on_a_pause():
    """The real aplay, into ALSA's null device: late and repeated slices are skipped."""
    opened: list[AplayOutput] = []

    def open_output():
        opened.append(AplayOutput("null"))
        return opened[-1]

    player = TalkPlayer(open_output)
    try:
        for packet in packets([0, 1, 2, 1, 3, 0, 4]):
            player.on_packet(packet)
        wait_for(lambda: player.talks == 1, what="the pause to end the talk")
        assert player.played == 5 and opened[0].returncode == 0
        for packet in packets([0, 1]):  # a new talk (the hub restarted): numbering anew
            player.on_packet(packet)
        wait_for(lambda: player.talks == 2, what="the second talk")
        assert player.played == 7 and len(opened) == 2
    finally:
        player.close()


def test_a_speaker_that_fails_loses_one_talk_not_the_player(tmp_path):
    outputs = iter([OSError("no such sound card"), None])

    def open_output():
        failure = next(outputs)
        if failure is not None:
            raise failure
        return WavOutput(tmp_path / "talk.wav")

    player = TalkPlayer(open_output)
    try:
        for packet in packets(range(5)):
            player.on_packet(packet)
        wait_for(lambda: player.failed == 1, what="the first talk to fail")
        assert player.played == 0
        for packet in packets(range(10)):
            player.on_packet(packet)
        wait_for(lambda: player.talks == 1, what="the next talk to play")
        with wave.open(str(tmp_path / "talk.wav")) as wav:
            assert wav.getnframes() == 10 * 320
    finally:
        player.close()


PI5_CARDS = """\
 0 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0
                      vc4-hdmi-0
 1 [vc4hdmi1       ]: vc4-hdmi - vc4-hdmi-1
                      vc4-hdmi-1
 2 [MAX98357A      ]: simple-card - MAX98357A
                      MAX98357A
"""


def test_the_amplifier_is_found_by_name_whatever_its_card_number(tmp_path):
    # On a Pi 5 the I2S amp is card 2 behind two HDMI cards; ALSA's "default" is HDMI.
    cards = tmp_path / "cards"
    cards.write_text(PI5_CARDS)
    assert alsa_device(SpeakerSettings(output="alsa"), cards) == "plughw:CARD=MAX98357A,DEV=0"
    assert find_card(PI5_CARDS, "hdmi-1") == "vc4hdmi1"
    chosen = SpeakerSettings(output="alsa", alsa_device="hw:1,0")
    assert alsa_device(chosen, cards) == "hw:1,0", "an explicit device is used as it is"
    cards.write_text(PI5_CARDS.split(" 2 [")[0])
    assert alsa_device(SpeakerSettings(output="alsa"), cards) == "default"
    assert alsa_device(SpeakerSettings(output="alsa"), tmp_path / "no-alsa") == "default"


def test_aplay_is_asked_for_a_short_buffer():
    # aplay's default buffer holds up to half a second: that much between a word and the door.
    output = AplayOutput("null")
    try:
        command = output._process.args
        assert f"--buffer-time={APLAY_BUFFER_US}" in command
        assert 100_000 <= APLAY_BUFFER_US <= 150_000, "room for jitter, not half a second"
        assert f"--start-delay={APLAY_START_US}" in command and APLAY_START_US < APLAY_BUFFER_US
        output.write(b"\0\0" * 320)
    finally:
        output.close()
    assert output.returncode == 0


def test_an_underrun_is_counted_and_logged(tmp_path, monkeypatch, caplog):
    """aplay says 'underrun!!!' on its error output when packets come late (ALSA's null
    device never runs dry, so a stand-in aplay says it here): the doorbell logs it."""
    fake = tmp_path / "aplay"
    fake.write_text(
        "#!/bin/sh\necho \"Playing raw data 'stdin'\" >&2\n"
        "echo 'underrun!!! (at least 41.2 ms long)' >&2\ncat > /dev/null\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    output = AplayOutput("null")
    output.write(b"\0\0" * 320)
    output.close()
    assert output.underruns == 1
    assert "the speaker ran dry" in caplog.text and "Playing" not in caplog.text

"""Live view on the hub: one device stream in, one WebRTC peer connection per viewer out.

The media path, end to end: the device publishes the H.264 access units its encoder makes
anyway (``live/video``, only under a lease); :meth:`LiveRelay.feed` hands each to every
viewer's :class:`RelayTrack`; aiortc packetises them into RTP as they are. Nothing is decoded
or encoded on the hub, and the device's work does not grow with the number of viewers.

A new viewer gets a picture at once: joining asks the device's encoder for an IDR frame
(``LiveRequest.keyframe``) and the viewer's track skips everything before the next keyframe.
A browser's later keyframe requests (PLI/FIR, after packet loss) are forwarded to the encoder
too, at most once a second per device. The encoder's regular interval (a second by default)
stays what it is: a shorter one would cost bitrate on every clip.

ICE: host candidates only by default (no STUN, no TURN; ``aiortc`` would otherwise ask a
public STUN server), optionally narrowed to ``live.ice_addresses``, plus a TURN server when
``live.turn_url`` is set.

Talk: a viewer allowed to talk, watching a doorbell with a speaker, may send audio on the
same connection (the page attaches the microphone only while its Talk button is on). The
hub decodes it (Opus, by aiortc), resamples it to 16 kHz mono and sends it to the device in
20 ms :class:`TalkPacket` slices; one person talks at a time. Nothing comes back: the
doorbell has no microphone path.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from porch.core.config import LiveSettings
from porch.core.wire import TALK_RATE, LivePacket, LiveRequest, Message, TalkPacket

log = logging.getLogger(__name__)
CLOCK = Fraction(1, 90000)
QUEUE_FRAMES = 30
"""A viewer this many frames behind is cut back to the next keyframe."""
KEYFRAME_REQUESTS_EVERY_S = 1.0
TALK_HANDOVER_S = 1.0
"""Someone else may talk once the current talker has been quiet this long."""


class LiveError(Exception):
    """A live-view request that cannot be served; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RelayTrack(MediaStreamTrack):
    """A viewer's video track: the device's packets as they come, from a keyframe on."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[LivePacket] = asyncio.Queue(QUEUE_FRAMES)
        self._waiting_for_keyframe = True
        self._start = time.monotonic()
        self.forwarded = 0

    def offer(self, packet: LivePacket) -> bool:
        """Queue one packet (on the event loop); False when this viewer needs a keyframe."""
        if self._waiting_for_keyframe:
            if not packet.keyframe:
                return False
            self._waiting_for_keyframe = False
        if self._queue.full():  # the viewer's link is slower than the stream: start over
            while not self._queue.empty():
                self._queue.get_nowait()
            self._waiting_for_keyframe = True
            return False
        self._queue.put_nowait(packet)
        return True

    def restart(self) -> None:
        """The device's stream broke off (it went offline): wait for its next keyframe."""
        self._waiting_for_keyframe = True

    async def recv(self) -> av.Packet:
        packet = await self._queue.get()
        encoded = av.Packet(packet.data)
        # Hub arrival time as the RTP clock: a restarted device's media time starts again at
        # zero, arrival time never runs backwards.
        encoded.pts = round((time.monotonic() - self._start) / CLOCK)
        encoded.time_base = CLOCK
        self.forwarded += 1
        return encoded


@dataclass
class LiveSession:
    """One viewer: a signed-in person watching one device in one browser tab."""

    session_id: str
    device_id: str
    username: str
    pc: RTCPeerConnection
    track: RelayTrack
    web_session: str = ""
    """The key of the signed-in session that opened it: when that ends, so does this."""
    lease_until: float = 0.0
    """Monotonic time at which it ends unless the page renews it (with a valid session)."""
    since: float = field(default_factory=time.time)
    talk_task: asyncio.Task | None = None


class LiveRelay:
    """Every viewer of every device, and the leases that keep devices streaming."""

    def __init__(self, settings: LiveSettings, publish: Callable[[Message], None]):
        self.settings = settings
        self._publish = publish
        self._speakers: set[str] = set()
        self._talker: dict[str, tuple[str, float]] = {}
        """Per device: who talks now (session id) and when their last audio came."""
        self._talk_seq: dict[str, int] = {}
        self.talk_sent: dict[str, int] = {}
        """Talk packets sent per device."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[str, LiveSession] = {}
        self._last_keyframe_request: dict[str, float] = {}
        self._lease_task: asyncio.Task | None = None
        self._ending: set[asyncio.Future[None]] = set()
        self.received: dict[str, int] = {}
        """Live packets received per device (each forwarded to every viewer)."""
        if settings.ice_addresses:
            _advertise_only(settings.ice_addresses)

    # -- lifecycle (event loop) -----------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lease_task = loop.create_task(self._renew_leases())

    async def close(self) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
        for session_id in list(self._sessions):
            await self._end(session_id)

    @property
    def ice_servers(self) -> list[dict]:
        """What browsers put in ``RTCPeerConnection({iceServers})``: none, or the TURN server."""
        live = self.settings
        if not live.turn_url:
            return []
        return [{"urls": live.turn_url, "username": live.turn_username,
                 "credential": live.turn_password}]  # fmt: skip

    # -- signalling (event loop) ----------------------------------------------------------

    def has_speaker(self, device_id: str) -> bool:
        """The device is online and said it has a speaker."""
        return device_id in self._speakers

    async def open(
        self,
        device_id: str,
        username: str,
        sdp: str,
        may_talk: bool = False,
        web_session: str = "",
    ) -> tuple[str, str]:
        """Answer a browser's offer to watch ``device_id``: (session id, answer SDP).

        An audio section in the offer is accepted (to receive) only when ``may_talk`` and
        the device has a speaker; otherwise it is answered inactive."""
        if len(self.viewers(device_id)) >= self.settings.max_viewers:
            raise LiveError(429, f"{self.settings.max_viewers} people are watching already")
        servers = [
            RTCIceServer(s["urls"], s["username"], s["credential"]) for s in self.ice_servers
        ]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        track = RelayTrack()
        talk = may_talk and self.has_speaker(device_id)
        lease_until = time.monotonic() + self.settings.viewer_lease_s
        session = LiveSession(
            secrets.token_urlsafe(16), device_id, username, pc, track, web_session, lease_until
        )

        @pc.on("track")
        def _track(remote: MediaStreamTrack) -> None:
            if remote.kind == "audio" and talk:
                session.talk_task = asyncio.ensure_future(self._relay_talk(session, remote))

        try:
            sender = pc.addTrack(track)
            _forward_keyframe_requests(sender, lambda: self._keyframe_wanted(device_id))
            h264 = [
                codec
                for codec in RTCRtpSender.getCapabilities("video").codecs
                if codec.mimeType == "video/H264"
            ]
            pc.getTransceivers()[0].setCodecPreferences(h264)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            for transceiver in pc.getTransceivers()[1:]:
                transceiver.direction = (
                    "recvonly" if talk and transceiver.kind == "audio" else "inactive"
                )
            await pc.setLocalDescription(await pc.createAnswer())
            if pc.getTransceivers()[0].currentDirection not in ("sendonly", "sendrecv"):
                raise ValueError("the offer does not ask to receive video")
        except Exception as exc:  # aiortc raises all sorts on a bad offer
            await pc.close()
            detail = str(exc) or type(exc).__name__
            raise LiveError(400, f"not a WebRTC offer to receive H.264 video ({detail})") from None

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._end(session.session_id)

        self._sessions[session.session_id] = session
        self._lease(device_id, keyframe=True)
        log.info("%s watches %s (%d watching)", username, device_id, len(self.viewers(device_id)))
        return session.session_id, pc.localDescription.sdp

    async def add_candidate(self, session_id: str, username: str, candidate: dict | None) -> None:
        """A browser's trickled ICE candidate (``None``: it has no more)."""
        session = self._owned(session_id, username)
        if candidate is None or not candidate.get("candidate"):
            await session.pc.addIceCandidate(None)
            return
        try:
            parsed = candidate_from_sdp(candidate["candidate"].removeprefix("candidate:"))
        except (ValueError, IndexError) as exc:
            raise LiveError(400, f"unusable ICE candidate: {exc}") from None
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
            parsed.sdpMLineIndex = 0
        await session.pc.addIceCandidate(parsed)

    async def leave(self, session_id: str, username: str) -> None:
        self._owned(session_id, username)
        await self._end(session_id)

    def renew(self, session_id: str, username: str, web_session: str) -> float:
        """The page keeps watching (its session checked by the caller): seconds until the
        view ends unless renewed again. Only the session that opened it may renew it."""
        session = self._owned(session_id, username)
        if session.web_session != web_session:
            raise LiveError(404, "no such live session")
        session.lease_until = time.monotonic() + self.settings.viewer_lease_s
        return self.settings.viewer_lease_s

    def end_sessions(self, keys: frozenset[str]) -> None:
        """Signed-in sessions ended (signed out, password changed, account removed): end
        the live views and talk they opened. Safe from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._end_opened_by, keys)

    def viewers(self, device_id: str) -> list[LiveSession]:
        return [s for s in self._sessions.values() if s.device_id == device_id]

    def session(self, session_id: str) -> LiveSession | None:
        return self._sessions.get(session_id)

    # -- the device's side (paho's thread) ------------------------------------------------

    def feed(self, packet: LivePacket) -> None:
        """One packet from a device, to each of its viewers."""
        self.received[packet.device_id] = self.received.get(packet.device_id, 0) + 1
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, packet)

    def device_status(self, device_id: str, online: bool, speaker: bool = False) -> None:
        """A device came or went: viewers wait for its next keyframe; a returning device is
        asked to stream again at once."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._status, device_id, online, speaker)

    # -- internals (event loop) -----------------------------------------------------------

    def _deliver(self, packet: LivePacket) -> None:
        for session in self.viewers(packet.device_id):
            if not session.track.offer(packet) and not packet.keyframe:
                self._keyframe_wanted(packet.device_id)

    def _status(self, device_id: str, online: bool, speaker: bool) -> None:
        if online and speaker:
            self._speakers.add(device_id)
        else:
            self._speakers.discard(device_id)
        for session in self.viewers(device_id):
            session.track.restart()
        if online and self.viewers(device_id):
            self._lease(device_id, keyframe=True)

    def _end_opened_by(self, keys: frozenset[str]) -> None:
        for session in list(self._sessions.values()):
            if session.web_session in keys:
                log.info("%s signed out: their live view of %s ends", session.username,
                         session.device_id)  # fmt: skip
                task = asyncio.ensure_future(self._end(session.session_id))
                self._ending.add(task)
                task.add_done_callback(self._ending.discard)

    def _owned(self, session_id: str, username: str) -> LiveSession:
        session = self._sessions.get(session_id)
        if session is None or session.username != username:
            raise LiveError(404, "no such live session")
        return session

    async def _end(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        session.track.stop()
        if session.talk_task is not None:
            session.talk_task.cancel()
        await session.pc.close()
        self._lease(session.device_id)
        log.info("%s stopped watching %s", session.username, session.device_id)

    async def _relay_talk(self, session: LiveSession, track: MediaStreamTrack) -> None:
        """A viewer's voice to the device, in 20 ms slices at TALK_RATE, while they talk."""
        device_id = session.device_id
        resampler = av.AudioResampler(format="s16", layout="mono", rate=TALK_RATE)
        pending = b""
        slice_bytes = TALK_RATE * 2 // 50
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            talker, last = self._talker.get(device_id, (session.session_id, 0.0))
            if talker != session.session_id and now - last < TALK_HANDOVER_S:
                continue  # someone else is talking
            if talker != session.session_id or now - last >= TALK_HANDOVER_S:
                log.info("%s talks at %s", session.username, device_id)
            self._talker[device_id] = (session.session_id, now)
            if not isinstance(frame, av.AudioFrame):
                continue
            for out in resampler.resample(frame):
                pending += bytes(out.planes[0])[: out.samples * 2]
            while len(pending) >= slice_bytes:
                pcm, pending = pending[:slice_bytes], pending[slice_bytes:]
                seq = self._talk_seq.get(device_id, 0)
                self._talk_seq[device_id] = seq + 1
                try:
                    self._publish(TalkPacket(device_id, seq, pcm))
                except Exception:  # the broker is away: this slice is lost, like a lost packet
                    log.warning("could not send talk to %s", device_id)
                    continue
                self.talk_sent[device_id] = self.talk_sent.get(device_id, 0) + 1

    def _keyframe_wanted(self, device_id: str) -> None:
        last = self._last_keyframe_request.get(device_id, 0.0)
        if time.monotonic() - last >= KEYFRAME_REQUESTS_EVERY_S:
            self._lease(device_id, keyframe=True)

    def _lease(self, device_id: str, keyframe: bool = False) -> None:
        count = len(self.viewers(device_id))
        if keyframe:
            self._last_keyframe_request[device_id] = time.monotonic()
        request = LiveRequest(
            device_id=device_id,
            viewers=count,
            lease_s=self.settings.lease_s,
            keyframe=keyframe and count > 0,
        )
        try:
            self._publish(request)
        except Exception:  # the broker is away: the next renewal tries again
            log.exception("could not send the live lease to %s", device_id)

    async def _renew_leases(self) -> None:
        """Every third of a lease: the devices' leases renewed, lapsed viewers ended."""
        while True:
            await asyncio.sleep(min(self.settings.lease_s, self.settings.viewer_lease_s) / 3)
            now = time.monotonic()
            for session in list(self._sessions.values()):
                if session.lease_until < now:
                    log.info("%s's live view of %s lapsed", session.username, session.device_id)
                    await self._end(session.session_id)
            for device_id in {s.device_id for s in self._sessions.values()}:
                self._lease(device_id)


def _forward_keyframe_requests(sender: RTCRtpSender, wanted: Callable[[], None]) -> None:
    """aiortc answers a viewer's PLI/FIR by flagging its own encoder, which a pass-through
    track does not use; route the request to the device's encoder instead."""
    flag = sender._send_keyframe

    def send_keyframe() -> None:
        flag()
        wanted()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


def _advertise_only(addresses: list[str]) -> None:
    """Offer browsers only these host addresses (aioice offers every interface by default)."""
    import aioice.ice

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in addresses if (use_ipv6 if ":" in a else use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses

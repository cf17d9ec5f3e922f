"""The pre-roll: the last seconds of encoded video, kept in RAM so that a clip can start
before the event that caused it. Nothing here touches the SD card.
"""

from __future__ import annotations

from collections import deque

from porch.device.camera import EncodedPacket


class PrerollBuffer:
    """Whole groups of pictures (keyframe + what follows) covering at least ``seconds``.

    The buffer always starts on a keyframe, keeps the newest keyframe at or before
    ``newest - seconds`` so that a clip gets the full pre-roll, and never holds more than
    ``max_bytes`` of packets: when over, the oldest groups go first, then the newest group's
    packets until the next keyframe. Used from the capture thread only.
    """

    def __init__(self, seconds: float, max_bytes: int):
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._groups: deque[list[EncodedPacket]] = deque()
        self._bytes = 0
        self.dropped_for_bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def add(self, packet: EncodedPacket) -> None:
        if packet.keyframe:
            self._groups.append([])
        elif not self._groups:
            return  # a group can only begin on a keyframe
        self._groups[-1].append(packet)
        self._bytes += len(packet.data)
        cutoff = packet.pts - self.seconds
        while len(self._groups) > 1 and self._groups[1][0].pts <= cutoff:
            self._drop_oldest()
        while self._bytes > self.max_bytes and self._groups:
            self._drop_oldest()
            self.dropped_for_bytes += 1

    def _drop_oldest(self) -> None:
        group = self._groups.popleft()
        self._bytes -= sum(len(p.data) for p in group)

    def packets(self) -> list[EncodedPacket]:
        """Everything held, oldest first, starting on a keyframe."""
        return [p for group in self._groups for p in group]

    def duration(self) -> float:
        """Seconds from the first packet held to the newest."""
        if not self._groups:
            return 0.0
        return self._groups[-1][-1].pts - self._groups[0][0].pts

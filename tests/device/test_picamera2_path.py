"""The Raspberry Pi camera path, everything around picamera2's few public calls.

picamera2 needs libcamera and a Pi, so :class:`StandInPicamera2` plays its part with the
calls and behaviour hardware.md lists (checked against picamera2 0.3.36's source): encoder
timestamps in µs from the encoder's own first frame, sensor timestamps in ns, a camera that
may adjust the configured size. Everything Porch does with them runs for real.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import types

import av
import cv2
import numpy as np
import pytest

from porch.device.camera.opencv import CameraError
from porch.device.camera.picamera2 import (
    PROFILE,
    Clocks,
    MaskBurner,
    Picamera2Source,
    keyframes_on_demand,
)
from porch.device.regions import PrivacyMask
from tests.support.common import ROOT

LEFT_HALF = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
STRIDE = 1344  # the stand-in camera's rows: 1296 pixels padded to a multiple of 64


def test_the_mask_is_sized_from_the_array_not_the_configuration():
    burner = MaskBurner(PrivacyMask([LEFT_HALF]))
    for shape in ((720, 1280, 4), (736, 1296, 4)):  # as configured, and as libcamera adjusted
        array = np.full(shape, 200, np.uint8)
        burner(array)
        assert (array[:, : shape[1] // 2 - 1] == 0).all()
        assert (array[:, shape[1] // 2 + 1 :] == 200).all()


def _planes(array: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U and V of a picamera2 YUV420 array (height × 3/2 rows of ``stride`` bytes)."""
    rows, stride = array.shape
    height = rows * 2 // 3
    flat, plane = array.reshape(-1), (height // 2) * (stride // 2)
    u, v = (
        flat[start : start + plane].reshape(height // 2, stride // 2)[:, : width // 2]
        for start in (height * stride, height * stride + plane)
    )
    return array[:height, :width], u, v


def test_the_mask_is_burned_into_yuv420_colour_and_all():
    """The main stream is YUV420 (a third of XBGR's CMA): the mask makes its Y plane video
    black and both colour planes neutral, where the mask is and on every colour sample that
    touches its edge (each colours 2×2 pixels), and writes nothing into the rows' padding."""
    rng = np.random.default_rng(4)
    polygons = [rng.uniform(-0.1, 1.1, (int(rng.integers(3, 8)), 2)).tolist() for _ in range(3)]
    privacy = PrivacyMask(polygons)
    width, height = 1296, 736
    array = np.full((height * 3 // 2, STRIDE), 77, np.uint8)
    y, u, v = _planes(array, width)
    y[:], u[:], v[:] = 150, 40, 200
    MaskBurner(privacy, "YUV420", width)(array)
    covered = privacy.mask(width, height) != 0
    assert 0.1 < covered.mean() < 0.9
    assert (y[covered] == 16).all() and (y[~covered] == 150).all()
    # Every colour sample whose 2×2 pixels meet the mask is neutral.
    touched = covered.reshape(height // 2, 2, width // 2, 2).any(axis=(1, 3))
    for plane in (u, v):
        assert (plane[touched] == 128).all()
        assert (plane[~touched] != 128).mean() > 0.95, "colour kept away from the mask"
    assert (array[:height, width:] == 77).all(), "nothing written into the padding"
    picture = cv2.cvtColor(
        np.ascontiguousarray(np.vstack([y, u.reshape(-1, width), v.reshape(-1, width)])),
        cv2.COLOR_YUV2BGR_I420,
    )
    assert picture[covered].max() <= 2, "the masked pixels are black, with no colour"


def test_the_mask_is_burned_into_nv12_and_an_unknown_format_is_refused():
    """NV12 (which libcamera may hand for a YUV420 request): Y black, the interleaved U and V
    neutral wherever they colour a masked pixel, in the view picamera2 hands (cut to the
    picture's width out of padded rows). A format the burner does not know is refused at
    start rather than burned into the wrong bytes."""
    privacy = PrivacyMask([LEFT_HALF, [[0.6, 0.6], [0.9, 0.6], [0.75, 0.95]]])
    width, height = 1296, 736
    padded = np.full((height * 3 // 2, STRIDE), 77, np.uint8)
    array = padded[:, :width]  # as picamera2's _make_array_shared returns NV12
    array[:height], array[height:, 0::2], array[height:, 1::2] = 150, 40, 200
    MaskBurner(privacy, "NV12", width)(array)
    covered = privacy.mask(width, height) != 0
    assert (array[:height][covered] == 16).all() and (array[:height][~covered] == 150).all()
    touched = covered.reshape(height // 2, 2, width // 2, 2).any(axis=(1, 3))
    u, v = array[height:, 0::2], array[height:, 1::2]
    assert (u[touched] == 128).all() and (v[touched] == 128).all()
    assert (u[~touched] == 40).all() and (v[~touched] == 200).all()
    assert (padded[:, width:] == 77).all(), "nothing written into the padding"
    picture = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_YUV2BGR_NV12)
    assert picture[covered].max() <= 2
    with pytest.raises(CameraError, match="YUYV"):
        MaskBurner(privacy, "YUYV", width)


def test_frames_and_packets_share_one_clock():
    # The encoder started 40 ms of sensor time before the first frame the loop sees.
    clocks = Clocks()
    encoder_first_us = 5_000_000
    assert clocks.frame(5_040_000_000, encoder_first_us) == pytest.approx(0.04)
    # The packet of that same frame: 40 ms after the encoder's first.
    assert clocks.packet(40_000, encoder_first_us) == pytest.approx(0.04)
    assert clocks.frame(5_106_666_000, encoder_first_us) == pytest.approx(0.106666)
    assert clocks.packet(106_666, encoder_first_us) == pytest.approx(0.106666)


class LibavH264Encoder:  # the name picamera2 gives its software encoder (a Pi 5's)
    def force_key_frame(self) -> None: ...


def test_keyframes_on_demand_only_where_the_encoder_can_make_them():
    # picamera2's software encoder sets frame.pict_type = "I"; this PyAV refuses a string.
    frame = av.VideoFrame(16, 16, "yuv420p")
    with pytest.raises(TypeError):
        frame.pict_type = "I"
    assert keyframes_on_demand(LibavH264Encoder()) is False
    hardware = type("H264Encoder", (), {"force_key_frame": lambda self: None})()
    assert keyframes_on_demand(hardware) is True
    assert keyframes_on_demand(object()) is False, "picamera2 before 0.3.32"


class StandInPicamera2:
    """picamera2.Picamera2's calls that Porch makes, with their documented behaviour."""

    adjusted = (1296, 736)

    def __init__(self) -> None:
        self.controls: dict = {}
        self.pre_callback = None
        self.sensor_ns = 7_000_000_000
        self.encoder = None

    def create_video_configuration(self, main, lores, controls):
        return {"main": dict(main), "lores": dict(lores), "controls": dict(controls)}

    def configure(self, config) -> None:
        self.config = config
        self.config["main"]["size"] = self.adjusted
        self.config["main"]["stride"] = STRIDE  # rows padded, as libcamera aligns them
        self.config["lores"]["format"] = "NV12"  # as libcamera may hand a YUV420 request

    def camera_configuration(self):
        return self.config

    def start_recording(self, encoder, output) -> None:
        self.encoder, self.output = encoder, output

    def capture_request(self):
        self.sensor_ns += 66_666_667
        width, height = self.adjusted
        main = np.full((height * 3 // 2, STRIDE), 200, np.uint8)  # YUV420, as configured
        request = types.SimpleNamespace(main=main)
        if self.pre_callback is not None:
            self.pre_callback(request)
        # the encoder's thread: its first frame sets firsttimestamp (µs, sensor time)
        sensor_us = self.sensor_ns // 1000
        if self.encoder.firsttimestamp is None:
            self.encoder.firsttimestamp = sensor_us
        self.output.outputframe(main.tobytes()[:16], True, sensor_us - self.encoder.firsttimestamp)
        metadata = {"SensorTimestamp": self.sensor_ns, "Lux": 3.5}
        width, height = self.config["lores"]["size"]
        lores = np.zeros((height * 3 // 2, width), np.uint8)  # NV12: Y, then U and V interleaved
        lores[:height] = 120
        lores[height:, 0::2], lores[height:, 1::2] = 90, 240  # a red porch light
        return types.SimpleNamespace(
            make_array=lambda name: lores, get_metadata=lambda: metadata, release=lambda: None
        )

    def set_controls(self, controls) -> None:
        self.controls.update(controls)

    def stop_recording(self) -> None: ...

    def close(self) -> None: ...


class StandInEncoder:
    threads = 0  # picamera2's LibavH264Encoder's default: as many frame threads as cores

    def __init__(self, bitrate, repeat, iperiod, framerate, profile):
        self.kwargs = dict(bitrate=bitrate, repeat=repeat, iperiod=iperiod, framerate=framerate)
        self.profile = profile
        self.firsttimestamp = None
        self.keyframes = 0

    def force_key_frame(self) -> None:
        self.keyframes += 1


class MappedArray:
    def __init__(self, request, stream):
        self.array = getattr(request, stream)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def picamera2(monkeypatch):
    cameras: list[StandInPicamera2] = []

    def make() -> StandInPicamera2:
        cameras.append(StandInPicamera2())
        return cameras[-1]

    package = types.ModuleType("picamera2")
    package.Picamera2, package.MappedArray = make, MappedArray
    encoders = types.ModuleType("picamera2.encoders")
    encoders.H264Encoder = type("H264Encoder", (StandInEncoder,), {})
    outputs = types.ModuleType("picamera2.outputs")
    outputs.Output = type("Output", (), {})
    for name, module in (("picamera2", package), ("picamera2.encoders", encoders),
                         ("picamera2.outputs", outputs)):  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
    return cameras


def test_the_source_uses_the_cameras_real_size_profile_rate_and_clock(picamera2):
    source = Picamera2Source(1280, 720, 15, 1.0, 1500, PrivacyMask([LEFT_HALF]))
    camera = picamera2[0]
    assert (source.width, source.height) == StandInPicamera2.adjusted, "muxed at the real size"
    assert camera.encoder.profile == PROFILE == "constrained baseline"
    assert camera.encoder.kwargs["framerate"] == 15 and camera.encoder.kwargs["iperiod"] == 15
    assert camera.encoder.threads == 2, "one frame behind, not as many as there are cores"
    captures = source.captures()
    first, second = next(captures), next(captures)
    assert first.ts == pytest.approx(0, abs=1e-5) and first.packets[0].pts == 0.0
    assert second.ts == pytest.approx(second.packets[0].pts, abs=1e-6)
    assert second.ts == pytest.approx(1 / 15, abs=1e-3)
    assert first.lux == 3.5
    source.request_keyframe()
    assert camera.encoder.keyframes == 1
    source.set_night(True)
    assert camera.controls["Saturation"] == 0.0


def test_the_frame_rate_is_one_pyav_takes_as_a_pi_5s_encoder_hands_it(picamera2):
    """picamera2's LibavH264Encoder (a Pi 5's) calls add_stream(codec, rate=framerate) on
    PyAV: a float from the configuration (15.0) made that raise, so recording never began."""
    Picamera2Source(1280, 720, 15.0, 1.0, 1500, PrivacyMask([]))
    rate = picamera2[0].encoder.kwargs["framerate"]
    with av.open(io.BytesIO(), "w", format="mp4") as container:
        assert container.add_stream("libx264", rate=rate).codec_context.framerate == 15
        with pytest.raises(AttributeError):  # what it was handed before
            container.add_stream("libx264", rate=15.0)


@pytest.mark.parametrize(
    ("version", "refused"),
    [
        ("0.3.32", True),
        ("0.3.9", True),
        ("0.3.33", False),
        ("0.3.38", False),
        ("1.0", False),
        (None, False),
    ],
)
def test_a_picamera2_that_may_miss_the_mask_is_refused_at_start(version, refused):
    from porch.device.camera.opencv import CameraError
    from porch.device.camera.picamera2 import check_picamera2_version

    if refused:
        with pytest.raises(CameraError, match=r"too old: 0\.3\.33 or later"):
            check_picamera2_version(version)
    else:
        check_picamera2_version(version)


def test_ring_pictures_keep_the_scenes_shape_and_colours(picamera2):
    """The lores stream (motion, ring pictures, thumbnails) is asked at the main stream's
    shape, and read in the format the camera really hands (NV12 here), not assumed I420."""
    from porch.device.camera.picamera2 import lores_size

    assert lores_size(1280, 720) == (320, 180) and lores_size(640, 480) == (320, 240)
    source = Picamera2Source(1280, 720, 15, 1.0, 1500, PrivacyMask([]))
    assert picamera2[0].config["lores"]["size"] == (320, 180)
    image = next(source.captures()).image
    assert image.shape == (180, 320, 3), "16:9, as the scene is"
    blue, green, red = (int(v) for v in image[90, 160])
    assert red > 200 and blue < 100, (blue, green, red)


PICAMERA2_WHEEL = ROOT / ".venv-picamera2"
"""picamera2's own wheel from PyPI, unpacked by ``make test`` (pure Python: its encoders run
here once ``libcamera`` and the Pi-only modules it imports are stubbed)."""
PI_ONLY = ("libcamera", "prctl", "pykms", "videodev2", "simplejpeg", "piexif", "pidng",
           "pidng.core", "pidng.camdefs", "libarchive", "OpenEXR")  # fmt: skip


class RealEncoderCamera(StandInPicamera2):
    """The stand-in camera, but recording through picamera2's real encoder as its
    ``start_recording`` and camera thread do: the encoder gets the main stream's size, stride
    and format, starts, and encodes each request after the pre-callback (the mask) ran."""

    def start_recording(self, encoder, output) -> None:
        self.encoder, self.output = encoder, output
        encoder.output = output
        encoder.width, encoder.height = self.config["main"]["size"]
        encoder.stride = self.config["main"]["stride"]
        encoder.format = self.config["main"]["format"]
        encoder.start()

    def capture_request(self):
        self.sensor_ns += 66_666_667
        height = self.adjusted[1]
        main = np.full((height * 3 // 2, STRIDE), 40, np.uint8)  # YUV420: U and V low ...
        main[:height] = 150  # ... and Y bright: green, so the mask's black shows
        request = types.SimpleNamespace(
            main=main, request=types.SimpleNamespace(metadata={}), acquire=lambda: None,
            release=lambda: None)  # fmt: skip
        from libcamera import controls

        request.request.metadata[controls.SensorTimestamp] = self.sensor_ns
        if self.pre_callback is not None:
            self.pre_callback(request)
        self.encoder._encode("main", request)
        metadata = {"SensorTimestamp": self.sensor_ns, "Lux": 3.5}
        lores_w, lores_h = self.config["lores"]["size"]
        lores = np.full((lores_h * 3 // 2, lores_w), 120, np.uint8)
        return types.SimpleNamespace(
            make_array=lambda name: lores, get_metadata=lambda: metadata, release=lambda: None
        )

    def stop_recording(self) -> None:
        self.encoder.stop()


@pytest.fixture
def real_encoder(monkeypatch):
    """picamera2 0.3.38's own package: its LibavH264Encoder (a Pi 5's) and Output, real; the
    camera a stand-in."""
    assert (PICAMERA2_WHEEL / "picamera2" / "encoders").is_dir(), (
        f"make test unpacks picamera2's wheel in {PICAMERA2_WHEEL}")  # fmt: skip
    from unittest import mock

    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(PICAMERA2_WHEEL))
    for name in PI_ONLY:
        monkeypatch.setitem(sys.modules, name, mock.MagicMock(name=name))
    if importlib.util.find_spec("PIL") is None:  # a doorbell's install has no Pillow
        for name in ("PIL", "PIL.Image"):
            monkeypatch.setitem(sys.modules, name, mock.MagicMock(name=name))
    import picamera2
    import picamera2.encoders.libav_h264_encoder as libav

    cameras: list[RealEncoderCamera] = []

    def make() -> RealEncoderCamera:
        cameras.append(RealEncoderCamera())
        return cameras[-1]

    monkeypatch.setattr(picamera2, "Picamera2", make)
    monkeypatch.setattr(picamera2, "MappedArray", MappedArray)
    monkeypatch.setattr(libav, "MappedArray", MappedArray)  # a request's buffer, mapped
    monkeypatch.setattr(picamera2.encoders, "H264Encoder", libav.LibavH264Encoder)
    yield cameras, libav.LibavH264Encoder
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_picamera2s_own_software_encoder_records_what_the_source_asks(real_encoder):
    """A Pi 5: picamera2's LibavH264Encoder with real PyAV, configured by the source from the
    configuration's float frame rate, records decodable H.264 at the camera's real size,
    masked, with two frame threads. (picamera2 hands its framerate to PyAV's add_stream,
    which refused the float 15.0: recording never began.)"""
    cameras, encoder_class = real_encoder
    source = Picamera2Source(1280, 720, 15.0, 1.0, 1500, PrivacyMask([LEFT_HALF]))
    encoder = cameras[0].encoder
    assert type(encoder) is encoder_class
    context = encoder._stream.codec_context
    assert context.framerate == 15 and context.thread_count == 2 and context.gop_size == 15
    captures = source.captures()
    data = b"".join(packet.data for _ in range(20) for packet in next(captures).packets)
    source.close()
    assert data, "no packet came out of picamera2's encoder"
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for p in decoder.parse(data) for f in decoder.decode(p)]
    assert frames and (frames[0].width, frames[0].height) == StandInPicamera2.adjusted
    picture = frames[0].to_ndarray(format="rgb24")
    width = frames[0].width
    assert picture[:, : width // 2 - 16].max() < 40, "the privacy mask reached the encoder"
    assert picture[:, width // 2 + 16 :, 1].mean() > 150
    with pytest.raises(AttributeError, match="numerator"):  # what 15.0 did, as is
        bad = encoder_class(framerate=15.0)
        bad.width, bad.height, bad.format = 64, 64, "YUV420"
        bad._start()


def test_the_mask_is_filled_into_the_array_on_exactly_the_masks_pixels():
    """The polygons are filled straight into picamera2's array (no boolean index: 5.6 ms a
    frame at 720p on its thread), and black out exactly the pixels the mask covers, also in
    a view whose rows are padded (a stride wider than the picture, as libcamera may give)."""
    rng = np.random.default_rng(3)
    polygons = [rng.uniform(-0.1, 1.1, (int(rng.integers(3, 8)), 2)).tolist() for _ in range(4)]
    privacy = PrivacyMask(polygons)
    covered = privacy.mask(1280, 720) != 0
    assert 0 < covered.mean() < 1
    for channels in (4, 3, None):
        shape = (720, 1296) if channels is None else (720, 1296, channels)
        padded = np.full(shape, 200, np.uint8)
        picture = padded[:, :1280]  # rows 1296 wide, picture 1280: a strided view
        MaskBurner(privacy)(picture)
        assert (picture[covered] == 0).all() and (picture[~covered] == 200).all()
        assert (padded[:, 1280:] == 200).all(), "nothing written into the padding"

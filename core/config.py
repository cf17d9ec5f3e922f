"""Configuration of the device agent and the hub: TOML files validated by these models.

Every setting, its default and its meaning live here and nowhere else; ``porch config
defaults device|hub`` prints them as a commented TOML file and ``docs/configuration.md`` is
generated from the same models. A wrong type or an unknown key stops with exit code 2 and a
message naming the key (:class:`ConfigError`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from porch.core.wire import DEVICE_ID_PATTERN, GLANCES_PER_S, spoken_name

Point = Annotated[
    list[Annotated[float, Field(ge=0, le=1)]],
    Field(min_length=2, max_length=2, description="[x, y] as fractions of width and height"),
]
Polygon = Annotated[list[Point], Field(min_length=3, description="three or more points")]
DirPath = Annotated[Path, BeforeValidator(lambda v: Path(v) if isinstance(v, str) else v)]
"""A path; TOML gives a string, which strict mode would not turn into a Path itself."""


class ConfigError(Exception):
    """A configuration file that cannot be used; ``str()`` names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


class MqttSettings(_Section):
    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    keepalive_s: int = Field(15, ge=5, le=3600, description="MQTT keepalive, seconds.")
    tls_ca: str = Field(
        "", description="CA certificate (PEM) to check the broker with; empty: plain MQTT."
    )
    tls_cert: str = Field("", description="This client's certificate (PEM), for mutual TLS.")
    tls_key: str = Field("", description="This client's private key (PEM), for mutual TLS.")


class GpioSettings(_Section):
    pin_factory: Literal["auto", "mock"] = Field(
        "auto",
        description="gpiozero pin factory: 'auto' picks the Pi's driver, 'mock' simulates pins.",
    )
    button_pin: int = Field(17, ge=0, le=27, description="BCM pin of the push button (to GND).")
    chime_pin: int = Field(27, ge=0, le=27, description="BCM pin driving the chime relay.")
    chime_active_high: bool | None = Field(
        None,
        description="Whether the chime relay closes when its pin is high: false for most relay"
        " modules (the opto-isolated ones with a JD-VCC jumper), which 'porch device enroll'"
        " writes; true for one that closes on high (hardware.md: Chime relay). Unset (a"
        " doorbell set up before 2026-12, when true was assumed): the chime is not driven at"
        " all, rather than held on by the wrong level; presses still reach the hub, and the"
        " Devices page says what to set.",
    )
    chime_s: float = Field(0.5, gt=0, le=10, description="How long the chime relay closes, s.")
    bounce_s: float = Field(0.03, ge=0, le=1, description="Button debounce time, seconds.")


class CameraSettings(_Section):
    source: Literal["auto", "synthetic", "opencv", "picamera2"] = Field(
        "auto",
        description="'auto' is picamera2 on a Raspberry Pi and the synthetic scene elsewhere.",
    )
    width: int = Field(1280, ge=64, le=3840, multiple_of=2, description="Frame width, pixels.")
    height: int = Field(720, ge=64, le=2160, multiple_of=2, description="Frame height, pixels.")
    fps: float = Field(15, gt=0, le=60, description="Frames per second.")
    uri: str = Field(
        "0",
        description="For 'opencv': a V4L2 device index, a video file or an rtsp:// URL.",
    )
    seed: int = Field(1, description="For 'synthetic': the scene's random seed.")
    clock: bool = Field(
        False,
        description="For 'synthetic': draw the wall clock as a code on top (latency benchmarks).",
    )
    realtime: bool = Field(
        True,
        description="For 'synthetic' and files: pace frames at fps (false runs as fast as it can).",
    )
    dusk_at_s: float | None = Field(
        None,
        ge=0,
        description="For 'synthetic': seconds after start when dusk falls (the light measure"
        " drops to 1 lux over 5 s), to try night mode off a Pi; not set: always day.",
    )


class EncoderSettings(_Section):
    keyframe_interval_s: float = Field(
        1.0, gt=0, le=10, description="Seconds between IDR frames (also the pre-roll cut grain)."
    )
    bitrate_kbps: int = Field(1500, ge=100, le=20000, description="Target bitrate, kbit/s.")
    preset: str = Field("ultrafast", description="libx264 preset (software encoder only).")


class MotionSettings(_Section):
    enabled: bool = Field(True, description="Detect motion and record it.")
    analysis_width: int = Field(
        160,
        ge=80,
        le=1280,
        description="About the width the frame is shrunk to for detection, pixels.",
    )
    threshold: int = Field(
        25, ge=1, le=255, description="Grey-level change that counts as changed (0-255)."
    )
    min_area: float = Field(
        0.01, gt=0, le=1, description="Fraction of the watched area that must change."
    )
    end_after_s: float = Field(
        2.0, ge=0, le=60, description="Quiet seconds after which motion counts as ended."
    )
    zones: list[Polygon] = Field(
        default_factory=list,
        description="Detection zones; motion elsewhere is ignored. Empty: the whole frame.",
    )
    privacy_masks: list[Polygon] = Field(
        default_factory=list,
        description="Regions blacked out before detection and in every recording.",
    )
    glances_per_s: float = Field(
        4.0,
        ge=0,
        le=GLANCES_PER_S,
        description="Small pictures a second sent to the hub while motion goes on, for its"
        " person detector (privacy masks burned in); 0: none (motion only).",
    )


class ClipSettings(_Section):
    preroll_s: float = Field(5.0, ge=0, le=30, description="Seconds kept before an event.")
    postroll_s: float = Field(
        10.0, ge=1, le=120, description="Seconds recorded after the last press or motion."
    )
    max_clip_s: float = Field(
        120.0,
        ge=5,
        le=600,
        description="Longest clip, seconds (a clip is muxed in memory: this times the bitrate).",
    )
    preroll_max_bytes: int = Field(
        32 * 1024 * 1024, ge=64 * 1024, description="RAM cap of the pre-roll buffer, bytes."
    )
    store_max_bytes: int = Field(
        512 * 1024 * 1024, ge=1024 * 1024, description="Disk cap of the clip store, bytes."
    )
    thumbnail_width: int = Field(480, ge=64, le=1920, description="JPEG thumbnail width, px.")
    chunk_bytes: int = Field(
        256 * 1024, ge=1024, le=1024 * 1024, description="Clip transfer chunk size, bytes."
    )
    retry_s: float = Field(
        5.0, gt=0, le=600, description="How often an unconfirmed clip is offered again, s."
    )
    seal_key: str = Field(
        "",
        pattern=r"^([0-9a-f]{64})?$",
        description=(
            "The hub's X25519 public key (hex; enrollment writes it): clips and thumbnails are"
            " sealed to it, so that this device cannot read its own stored clips. Empty: clips"
            " are stored in the clear (the demo)."
        ),
    )
    sign_key: str = Field(
        "",
        description="This device's Ed25519 private key (PEM file; enrollment writes it): signs"
        " each clip's SHA-256 at capture.",
    )


class SpeakerSettings(_Section):
    output: Literal["none", "alsa", "wav"] = Field(
        "none",
        description="Where talk from the live page plays: 'none' (no speaker), 'alsa' (the"
        " Pi's sound output, through aplay) or 'wav' (each talk written to wav_path: the"
        " simulated doorbell). The doorbell's microphone is never used.",
    )
    alsa_device: str = Field(
        "auto",
        max_length=64,
        description="For 'alsa': 'auto' plays on the sound card named by alsa_card (the I2S"
        " amplifier, whatever its card number), else ALSA's default; or an ALSA device such as"
        " 'plughw:CARD=MAX98357A,DEV=0'.",
    )
    alsa_card: str = Field(
        "MAX98357A",
        max_length=32,
        description="For alsa_device 'auto': part of the card's id or name, as in"
        " /proc/asound/cards (the max98357a overlay's card is MAX98357A).",
    )
    wav_path: DirPath = Field(
        Path("talk.wav"),
        description="For 'wav': the file each talk replaces; relative paths are in data_dir.",
    )


class NightSettings(_Section):
    mode: Literal["auto", "day", "night"] = Field(
        "auto",
        description="'auto' switches night mode from the camera's own light measure (lux);"
        " 'day' and 'night' hold one mode. Cameras that give no measure stay in day mode.",
    )
    night_below_lux: float = Field(
        5.0, ge=0, description="Night mode when the scene stays darker than this, lux."
    )
    day_above_lux: float = Field(
        40.0,
        ge=0,
        description="Day mode when the scene stays brighter than this, lux: above night_below_lux"
        " and above what the IR LEDs alone light up (hysteresis).",
    )
    confirm_s: float = Field(
        10.0, ge=0, le=600, description="How long the light must stay past a limit to switch, s."
    )
    settle_s: float = Field(
        1.0,
        ge=0,
        le=10,
        description="After a switch, seconds the motion detector re-learns the scene instead"
        " of reporting (the IR-cut filter moves, exposure settles).",
    )
    ir_led_pin: int | None = Field(
        None, ge=0, le=27, description="BCM pin switching the IR LEDs (through a MOSFET), if any."
    )
    ir_cut: Literal["none", "self", "level", "pulse"] = Field(
        "none",
        description="The camera's IR-cut filter: 'none' (a fixed filter, as on the Camera Module"
        " 3, or none, as on NoIR modules), 'self' (the module switches it from its own light"
        " sensor; the motion detector learns each switch unaided), 'level' (one control input"
        " held at a level: ir_cut_pin) or 'pulse' (a bistable actuator moved by pulses of either"
        " polarity through an H-bridge: ir_cut_pin and ir_cut_pin_b). 'none' with ir_cut_pin"
        " set means 'level', as before this setting existed.",
    )
    ir_cut_pin: int | None = Field(
        None,
        ge=0,
        le=27,
        description="'level': BCM pin of the IR-cut control input (high = night, unless"
        " ir_cut_reversed); 'pulse': the H-bridge input that moves the filter out.",
    )
    ir_cut_pin_b: int | None = Field(
        None,
        ge=0,
        le=27,
        description="'pulse': the H-bridge's other input, which moves the filter back in.",
    )
    ir_cut_reversed: bool = Field(
        False,
        description="Swap the IR-cut filter's polarity: 'level' holds ir_cut_pin low for night;"
        " 'pulse' drives ir_cut_pin_b for night (set it when night mode moves the filter in).",
    )
    ir_cut_pulse_s: float = Field(
        0.15,
        ge=0.02,
        le=1.0,
        description="'pulse': how long each pulse drives the actuator, s (most take 100-200 ms).",
    )
    peek_s: float = Field(
        1.0,
        ge=0.2,
        le=5,
        description="At night, with ir_led_pin set: how long the IR LEDs go off to check that it"
        " is day before switching (the camera's lux counts the LEDs' own light), s.",
    )
    peek_every_s: float = Field(
        120.0,
        ge=10,
        le=3600,
        description="At night: the least time between two such checks, s.",
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> NightSettings:
        if self.day_above_lux <= self.night_below_lux:
            raise ValueError("day_above_lux must be above night_below_lux")
        if self.ir_cut == "none" and self.ir_cut_pin is not None:
            self.ir_cut = "level"
        needs = {"level": ("ir_cut_pin",), "pulse": ("ir_cut_pin", "ir_cut_pin_b")}
        for name in ("ir_cut_pin", "ir_cut_pin_b"):
            wanted = name in needs.get(self.ir_cut, ())
            if wanted and getattr(self, name) is None:
                raise ValueError(f"ir_cut = '{self.ir_cut}' needs {name}")
            if not wanted and getattr(self, name) is not None:
                raise ValueError(f"{name} is not used with ir_cut = '{self.ir_cut}'")
        pins = [
            pin for pin in (self.ir_led_pin, self.ir_cut_pin, self.ir_cut_pin_b) if pin is not None
        ]
        if len(set(pins)) != len(pins):
            raise ValueError("ir_led_pin, ir_cut_pin and ir_cut_pin_b must be different pins")
        return self


class DeviceConfig(_Section):
    """``device.toml``: one doorbell."""

    device_id: str = Field(
        "front-door", pattern=DEVICE_ID_PATTERN, description="Unique id, also the topic prefix."
    )
    name: str = Field(
        "", max_length=64, description='Name shown to people; "" says it from device_id.'
    )
    data_dir: DirPath = Field(
        Path("/var/lib/porch-device"), description="Outbox and clip store live here."
    )
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    gpio: GpioSettings = Field(default_factory=GpioSettings)
    camera: CameraSettings = Field(default_factory=CameraSettings)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    motion: MotionSettings = Field(default_factory=MotionSettings)
    clips: ClipSettings = Field(default_factory=ClipSettings)
    speaker: SpeakerSettings = Field(default_factory=SpeakerSettings)
    night: NightSettings = Field(default_factory=NightSettings)

    @model_validator(mode="after")
    def _named(self) -> DeviceConfig:
        if not self.name:  # "back-door" was enrolled: it is "Back door", not "Front door"
            self.name = spoken_name(self.device_id)
        return self

    @model_validator(mode="after")
    def _pins_apart(self) -> DeviceConfig:
        gpio, night = self.gpio, self.night
        named = {
            "gpio.button_pin": gpio.button_pin,
            "gpio.chime_pin": gpio.chime_pin,
            "night.ir_led_pin": night.ir_led_pin,
            "night.ir_cut_pin": night.ir_cut_pin,
            "night.ir_cut_pin_b": night.ir_cut_pin_b,
        }
        seen: dict[int, str] = {}
        for name, pin in named.items():
            if pin is None:
                continue
            if pin in seen:
                raise ValueError(f"{name} and {seen[pin]} are both BCM {pin}")
            seen[pin] = name
        return self


class HubClipSettings(_Section):
    max_bytes: int = Field(
        20 * 1024**3, ge=1024 * 1024, description="Disk cap of the hub's clip store, bytes."
    )
    retention_days: float = Field(
        30, gt=0, le=3650, description="Clips older than this are deleted unless kept."
    )
    max_clip_bytes: int = Field(
        512 * 1024**2,
        ge=1024 * 1024,
        description="Largest clip a device may offer, bytes; larger offers are refused (a"
        " doorbell's longest clip at its highest bitrate, 600 s at 20 Mbit/s, is 1.5 GB: raise"
        " it for such settings).",
    )
    receiving_per_device: int = Field(
        2,
        ge=1,
        le=32,
        description="Clips one device may be sending at once; its other offers wait (the"
        " device offers them again), so one device cannot hold the store's space.",
    )
    abandon_after_s: float = Field(
        900,
        ge=10,
        le=7 * 86400,
        description="A clip being received with no new chunk for this long is abandoned and"
        " its partial files deleted (the device offers it again if it still has it), s.",
    )


class WebSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the web app listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port of the web app.")
    public_url: str = Field(
        "", description="How people reach the hub, for links it prints (default: host:port)."
    )
    tls_cert: str = Field(
        "",
        description="Certificate (PEM) to serve the web app over HTTPS, e.g. the pki_dir's"
        " hub.crt; empty: plain HTTP (fine on 127.0.0.1, not on a LAN).",
    )
    tls_key: str = Field("", description="Private key (PEM) of tls_cert.")


class LiveSettings(_Section):
    ice_addresses: list[str] = Field(
        default_factory=list,
        description=(
            "Addresses the hub offers browsers as WebRTC host candidates; empty: every"
            " interface address but loopback."
        ),
    )
    turn_url: str = Field(
        "",
        pattern=r"^(turns?:\S+)?$",
        description=(
            "Optional TURN server for watching from outside the home, e.g."
            " 'turn:turn.example.net:3478'. Empty (the default): host candidates only, no"
            " STUN or TURN, nothing leaves the home network."
        ),
    )
    turn_username: str = Field("", description="TURN user name, if turn_url is set.")
    turn_password: str = Field("", description="TURN password, if turn_url is set.")
    max_viewers: int = Field(4, ge=1, le=16, description="Most live viewers at once, per device.")
    lease_s: float = Field(
        10,
        ge=2,
        le=60,
        description="A device streams this long after the hub's last renewal (hub gone: it stops).",
    )
    viewer_lease_s: float = Field(
        30,
        ge=5,
        le=600,
        description="A viewer's live view and talk end this long after their page last renewed"
        " them, which it can only do while its session holds (signed out: they end at once).",
    )


class HomeAssistantSettings(_Section):
    enabled: bool = Field(
        True,
        description="Publish the doorbells for Home Assistant (discovery, fresh rings, motion)"
        " on the home's broker; only an identity made for it may read them"
        " ('porch provision home-assistant').",
    )
    snapshots: bool = Field(
        False,
        description="Also publish each fresh ring's snapshot as an image entity. This puts the"
        " visitor's picture into Home Assistant's own storage and history.",
    )


class PeopleSettings(_Section):
    """Who is at the door: the hub's person detector (models installed by
    'porch hub models')."""

    enabled: bool = Field(
        True,
        description="Look for people in the small pictures doorbells send during motion."
        " Off, or without the models: every motion is just motion.",
    )
    models_dir: str = Field(
        "", description="Where the model files are; empty: <the hub's venv>/share/porch/models."
    )
    body_score: float = Field(
        0.8, gt=0, lt=1, description="BlazePose's score from which a body counts as a person."
    )
    face_score: float = Field(
        0.6, gt=0, lt=1, description="CenterFace's score from which a face counts as a person."
    )
    figure_score: float = Field(
        2.0,
        gt=0,
        le=10,
        description="OpenCV's HOG people detector's margin from which a tall upright figure"
        " counts as a person where BlazePose and CenterFace see none (a visitor turned away).",
    )
    confirm: int = Field(
        2, ge=1, le=10, description="Pictures of one motion with a person before it is one."
    )


class PushSettings(_Section):
    enabled: bool = Field(
        True,
        description="Let owners and members turn on notifications on their phones (Web Push);"
        " each person opts in per browser. Off: nothing is ever sent to a push service.",
    )
    services: list[str] = Field(
        default_factory=lambda: [
            "fcm.googleapis.com",
            "updates.push.services.mozilla.com",
            "web.push.apple.com",
            "notify.windows.com",
        ],
        description="Push services a browser's subscription may point at (its host, or a"
        " domain it ends in), over HTTPS only: the hub sends nowhere else.",
    )
    allow_loopback: bool = Field(
        False,
        description="Also accept subscriptions at http://127.0.0.1 (tests and benchmarks"
        " run a push service there).",
    )
    contact: str = Field(
        "mailto:owner@porch.invalid",
        max_length=200,
        description="The VAPID contact push services may use to reach the hub's operator.",
    )
    motion_cooldown_s: float = Field(
        600,
        ge=0,
        le=86400,
        description="At most one motion (or person) notification per person this often.",
    )


class AreaSettings(_Section):
    """Area requests (docs/area-requests.md): heard from a relay only when the owner turns
    them on and sets the home's location on the hub's Area page; both stay on the hub."""

    relay_host: str = Field(
        "",
        description="The area-request relay (an MQTT broker) the hub listens to, anonymously"
        " and read-only; empty: area requests are not available on this hub.",
    )
    relay_port: int = Field(8883, ge=1, le=65535, description="The relay's port.")
    relay_tls: bool = Field(
        True, description="Reach the relay over TLS (off only for a relay on this machine)."
    )
    relay_tls_ca: str = Field(
        "",
        description="CA certificate (PEM) to check the relay's TLS with; empty: the system's"
        " trusted CAs.",
    )
    min_area_km2: float = Field(
        0.05, ge=0.05, le=100,
        description="Requests for a smaller area are refused unseen: about 250 × 200 m, two"
        " or three streets of houses, so that no 'area' can single out one home.",
    )  # fmt: skip
    max_area_km2: float = Field(
        25.0, ge=0.05, le=1000,
        description="Requests for a larger area are refused unseen: no dragnet over a city.",
    )  # fmt: skip
    min_compactness: float = Field(
        0.3, ge=0.1, le=1,
        description="An area's 4πA/P² (1 a circle, 0.44 a 5:1 rectangle) must reach this: a"
        " thin strip along one street is refused, whatever its size.",
    )  # fmt: skip
    max_window_h: float = Field(
        72, gt=0, le=72, description="Longest time window a request may ask for, hours."
    )
    max_expiry_days: float = Field(
        30, gt=0, le=90, description="A request must lapse within this many days of issue."
    )
    allow_http_dropbox: bool = Field(
        False,
        description="Also send approved bundles to an http:// drop box on 127.0.0.1 (tests);"
        " otherwise only https:// drop boxes are used.",
    )

    @property
    def relay(self) -> MqttSettings:
        return MqttSettings(host=self.relay_host, port=self.relay_port, tls_ca=self.relay_tls_ca)


class ProvisioningSettings(_Section):
    pki_dir: str = Field(
        "",
        description="The home CA and the hub's keys ('porch provision init'); empty: no"
        " enrollment (the demo's plain loopback broker).",
    )
    enroll_host: str = Field(
        "127.0.0.1", description="Address the enrollment endpoint (TLS) listens on."
    )
    enroll_port: int = Field(8443, ge=1, le=65535, description="Port of the enrollment endpoint.")
    public_host: str = Field(
        "", description="The hub's address as devices reach it (default: enroll_host)."
    )
    broker_port: int = Field(
        8883, ge=1, le=65535, description="The broker's TLS port, as devices reach it."
    )
    reload_command: list[str] = Field(
        default_factory=list,
        description="Run after an enrollment or revocation to make Mosquitto re-read its ACL"
        " and CRL. Empty: systemd/porch-broker-reload.path does it (the hub runs unprivileged).",
    )


class HubConfig(_Section):
    """``hub.toml``: the home's hub."""

    data_dir: DirPath = Field(Path("/var/lib/porch-hub"), description="Database and clips.")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    clips: HubClipSettings = Field(default_factory=HubClipSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    provisioning: ProvisioningSettings = Field(default_factory=ProvisioningSettings)
    home_assistant: HomeAssistantSettings = Field(default_factory=HomeAssistantSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    people: PeopleSettings = Field(default_factory=PeopleSettings)
    area: AreaSettings = Field(default_factory=AreaSettings)


C = TypeVar("C", bound=BaseModel)


def validate(model: type[C], data: dict[str, Any], source: str = "config") -> C:
    """Build ``model`` from parsed TOML; a wrong key raises :class:`ConfigError` naming it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"] if not isinstance(p, int)) or "(top level)"
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"{source}: unknown key '{key}'") from None
        raise ConfigError(f"{source}: key '{key}': {first['msg']}") from None


def load(model: type[C], path: Path) -> C:
    """Read and validate a TOML file."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return validate(model, data, str(path))


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def to_toml(data: dict[str, Any]) -> str:
    """A settings file from a dict: top-level keys first, then one table per nested dict."""
    lines = [_toml_line(key, value) for key, value in data.items() if not isinstance(value, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines += ["", f"[{section}]"]
            lines += [_toml_line(key, value) for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _toml_line(key: str, value: object) -> str:
    """``key = value``; TOML has no null, so an unset optional setting is a comment."""
    return f"# {key} = (not set)" if value is None else f"{key} = {_toml_value(value)}"


def defaults_toml(model: type[BaseModel]) -> str:
    """The model's defaults as a TOML file, each key preceded by its description."""
    lines = [f"# {model.__doc__.strip()}" if model.__doc__ else "#", ""]
    instance = model()
    sections: list[tuple[str, BaseModel]] = []
    for name, field in model.model_fields.items():
        value = getattr(instance, name)
        if isinstance(value, BaseModel):
            sections.append((name, value))
            continue
        lines += [f"# {field.description}", _toml_line(name, value)]
    for section, value in sections:
        lines += ["", f"[{section}]"]
        for name, field in type(value).model_fields.items():
            lines += [f"# {field.description}", _toml_line(name, getattr(value, name))]
    return "\n".join(lines) + "\n"


def configuration_markdown(models: Mapping[str, type[BaseModel]]) -> str:
    """docs/configuration.md: every file's settings with defaults, generated from the models."""
    parts = [
        "# Configuration\n",
        "Generated by `porch config docs` from `core/config.py`, the one place where settings,"
        " defaults and their meanings live; do not edit by hand. A file needs only the keys it"
        " changes. A wrong type or an unknown key stops the program with exit code 2 and a"
        " message naming the key; `porch config check device|hub FILE` checks a file.\n",
    ]
    for which, model in models.items():
        parts += [f"## `{which}.toml`\n", "```toml", defaults_toml(model).rstrip("\n"), "```\n"]
    return "\n".join(parts)

"""Each check's settings (a target's `params: {check: {...}}`), as typed models.

They live here, apart from the checks, so the config can validate and store them typed without
importing the checks (and the network stack they need): `probe.validation` only. `CHECK_PARAMS` names
every check; `probe.checks.REGISTRY` must list the same names (a test holds them together).

Every duration is finite and capped, every count bounded, and booleans are not numbers.
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

from probe.validation import BaseModel, Field, field_validator, model_validator

# Caps: far above any sensible setting, low enough that a typo never makes a round endless.
MAX_STEP_SECONDS = 600.0
MAX_BODY_BYTES = 64 * 1024 * 1024
THROUGHPUT_MIN_SIZE = 256 * 1024

Seconds = Annotated[float, Field(gt=0, le=MAX_STEP_SECONDS)]
Port = Annotated[int, Field(gt=0, lt=65536)]
Flag = bool


def _count(low: int, high: int, default: int) -> int:
    return cast(int, Field(default, ge=low, le=high))  # a default that carries its bounds, typed as the field


class Params(BaseModel):
    """Base for each check's settings: frozen, unknown keys refused, strict types, finite numbers."""


class DNSParams(Params):
    pass


class TCPParams(Params):
    pass


class TLSParams(Params):
    sni: str | None = None  # default: the target's host
    alpn: tuple[str, ...] = Field(("h2", "http/1.1"), max_length=16)
    tries: int = _count(1, 16, 2)  # endpoints tried before the handshake is called failed
    # Whose ClientHello: Python's ssl (OpenSSL), a browser's (curl-cffi impersonation), or both,
    # compared (the verdict follows the browser's: what the apps that are browsers meet).
    fingerprint: Literal["python", "browser", "both"] = "python"
    browser: str = Field("chrome", min_length=1, max_length=32)  # curl-cffi's impersonation target


class HTTPParams(Params):
    scheme: Literal["https", "http"] | None = None  # default: https unless the port is 80
    path: str = "/"
    method: Literal["GET", "POST", "HEAD"] = "GET"
    body: str | None = Field(None, max_length=64 * 1024)
    headers: dict[str, str] = Field(default_factory=dict, max_length=64)
    max_body_bytes: int = _count(0, MAX_BODY_BYTES, 64 * 1024)
    max_redirects: int = _count(0, 20, 5)


class MTProtoParams(Params):
    # The framings of req_pq_multi: plain abridged and intermediate, and obfuscated2 (the apps').
    transports: tuple[Literal["abridged", "intermediate", "obfuscated2"], ...] = ("abridged", "intermediate", "obfuscated2")
    http_post: Flag = True  # OONI's plain-HTTP POST / as well
    # One exchange (connect, request, answer) is bounded by this or the check's timeout,
    # whichever is shorter.
    exchange_timeout: Seconds = 6.0


class WhatsAppChatParams(Params):
    hosts: tuple[str, ...] = Field((), max_length=256)  # default: the target's host
    # What to send first: the chat protocol's opening (Noise prologue + ClientHello), or nothing.
    hello: Literal["noise", "none"] = "noise"
    # "WA" + version bytes, hex; WhatsApp's mobile clients over TCP (Baileys: MOBILE_NOISE_HEADER).
    prologue: str = "57410502"
    # DNS and connect per host, and waiting for the server's first bytes: each bounded by
    # these or by the check's timeout, whichever is shorter.
    step_timeout: Seconds = 5.0
    reply_timeout: Seconds = 5.0
    hold_seconds: float = Field(3.0, ge=0, le=30)
    concurrency: int = _count(1, 64, 16)  # hosts measured at once

    @field_validator("prologue")
    @classmethod
    def _hex(cls, value: str) -> str:
        raw = bytes.fromhex(value)
        if len(raw) < 2 or len(raw) > 16:
            raise ValueError("the prologue is 2 to 16 bytes, in hex")
        return value


class QUICParams(Params):
    sni: str | None = None  # default: the target's host
    path: str = "/"
    port: Port = 443
    # The handshake, then the response, each bounded by this or the check's timeout if shorter.
    handshake_timeout: Seconds = 5.0
    max_body_bytes: int = _count(0, MAX_BODY_BYTES, 16 * 1024)
    decoy: Flag = True  # on a failed handshake, one with the decoy SNI to the same address


class STUNParams(Params):
    attempts: int = _count(1, 7, 3)  # requests sent before giving up (RFC 5389: Rc = 7)
    initial_rto: float = Field(0.5, gt=0, le=5)  # seconds; doubles after each request
    fingerprint: Flag = True  # add the FINGERPRINT attribute, as WebRTC clients do
    software: str | None = Field(None, max_length=128)  # a SOFTWARE attribute (none by default: less to fingerprint)
    control: str | None = None  # the control target to compare with; default: any with `stun`


class ThroughputParams(Params):
    scheme: Literal["https", "http"] | None = None  # default: https unless the port is 80
    path: str = "/"
    size: int = _count(THROUGHPUT_MIN_SIZE, 64 * 1024 * 1024, THROUGHPUT_MIN_SIZE)  # bytes to download
    range: Flag = True  # ask for just the first `size` bytes (Range: bytes=0-size-1)
    headers: dict[str, str] = Field(default_factory=dict, max_length=64)
    floor_bytes_per_second: float = Field(40_000, gt=0, le=10e9)  # slower than this is throttled
    stall_seconds: Seconds = 4.0  # no byte for this long: stalled
    max_seconds: Seconds = 8.0  # the transfer's cap; the rate so far is then judged
    connect_timeout: Seconds = 5.0  # connect + TLS, or the check's timeout if shorter
    max_redirects: int = _count(0, 10, 3)  # followed, to another host too (resolved like the apps do)
    control_ratio: float = Field(3.0, ge=1, le=1000)  # a fast control is this many times faster, at least
    decoy: Flag = True  # on a throttled transfer, the same download with the decoy SNI
    control: str | None = None  # the control target to compare with; default: any with `throughput`
    # An upload (HTTP PUT) to the same address and name, where the service has a URL that takes a
    # body: freezes counted in packets both ways trip on uploads too (issue 20).
    upload_path: str | None = Field(None, min_length=1, max_length=2048)
    upload_bytes: int = _count(64 * 1024, 4 * 1024 * 1024, 64 * 1024)

    @model_validator(mode="after")
    def _floor_reachable(self) -> ThroughputParams:
        if self.size / self.floor_bytes_per_second > self.max_seconds:
            raise ValueError(
                f"size / floor_bytes_per_second = {self.size / self.floor_bytes_per_second:.1f} s exceeds "
                f"max_seconds ({self.max_seconds} s): a transfer at the floor could never finish"
            )
        if self.upload_path is not None and not self.upload_path.startswith("/"):
            raise ValueError("upload_path is a path on the target's host (it starts with /)")
        return self


class AllowlistParams(Params):
    """A probe of what a regional allowlist is keyed on (issue 20), run by a control target of
    class `allowlist_probe` only when the vantage is under an allowlist: a TLS handshake, not
    validated, to the target's addresses (one per address family) with `sni` (None: no name)."""

    probe: Literal["domestic_name_foreign_address", "foreign_name_domestic_address", "domestic_address_no_name"]
    sni: str | None = Field(None, min_length=1, max_length=253)
    tries: int = _count(1, 4, 2)  # handshakes per family, alternated between the families: they must agree


# Every check, in the pipeline order the docs use.
CHECK_PARAMS: dict[str, type[Params]] = {
    "dns": DNSParams,
    "tcp": TCPParams,
    "tls": TLSParams,
    "http": HTTPParams,
    "mtproto": MTProtoParams,
    "whatsapp_chat": WhatsAppChatParams,
    "quic": QUICParams,
    "stun": STUNParams,
    "throughput": ThroughputParams,
    "allowlist": AllowlistParams,
}


# --- helper checks (docs/helper.md): measured through a `msgreach helper` abroad -----------------


class UDPStreamParams(Params):
    helper: str | None = None  # a helper's name; default: the first configured
    duration_seconds: float = Field(20.0, ge=0.5, le=120)  # raise timeouts.extra.udp_stream with it
    packets_per_second: int = _count(1, 200, 50)  # 20 ms voice frames
    packet_size: int = _count(76, 1200, 172)  # bytes per datagram (rounded down to 4)
    loss_floor: float = Field(0.2, gt=0, le=1)  # a call with this share lost is unusable
    grace_seconds: float = Field(1.0, ge=0.1, le=10)  # wait for late echoes after the last packet


class CircumventionParams(Params):
    protocol: Literal["wireguard", "openvpn", "shadowsocks", "vless_reality", "mtproxy_faketls"]
    helper: str | None = None
    sni: str = "www.microsoft.com"  # the borrowed name (VLESS/Reality, MTProxy fake-TLS)
    sends: int = _count(1, 10, 5)  # UDP: copies sent (each the same), 200 ms apart: a lossy line loses one, not all
    hold_seconds: float = Field(1.5, gt=0, le=10)  # TCP: how long the connection is watched for a reset


class HelperTransferParams(Params):
    helper: str | None = None
    bytes: int = _count(32 * 1024, 1024 * 1024, 256 * 1024)  # well past the 16–20 KB freeze
    stall_seconds: float = Field(3.0, gt=0, le=30)  # no byte for this long: frozen
    sni: str | None = None  # the name under test; default: the target's host
    decoy_sni: str | None = None  # default: the config's decoy_sni
    upload_bytes: int = Field(64 * 1024, ge=0, le=1024 * 1024)  # each upload to the helper (0: no uploads)

    @model_validator(mode="after")
    def _upload_past_the_freeze(self) -> HelperTransferParams:
        if 0 < self.upload_bytes < 64 * 1024:
            raise ValueError("upload_bytes: 0 (no uploads) or at least 65536: a smaller upload ends before a freeze counted in packets")
        return self


CHECK_PARAMS.update({"udp_stream": UDPStreamParams, "circumvention": CircumventionParams, "helper_transfer": HelperTransferParams})

"""Authentication between monitors and a helper: one shared secret, read from a file.

Every HTTP request carries `X-Msgreach-Time` (unix seconds), `X-Msgreach-Nonce` (random, hex)
and `X-Msgreach-Signature`: HMAC-SHA256 over method, path, time, nonce and the body. The helper
accepts a time within `WINDOW_SECONDS` of its own clock and a nonce it has not seen in that
window (a bounded cache), so a captured request cannot be replayed. Every answer is signed too,
over the request's nonce and the answer's body, so a censor cannot forge "it is down here too".

Datagrams of a stream belong to a session opened by a signed request: each carries the session
id, a sequence number and an HMAC-SHA256 under the session's own key (derived from the secret),
and the helper accepts each sequence number once (the session's expiry is the time window).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import OrderedDict
from pathlib import Path

from probe.config.files import MIN_HELPER_SECRET_BYTES, read_helper_secret

WINDOW_SECONDS = 30.0
MIN_SECRET_BYTES = MIN_HELPER_SECRET_BYTES
MAC_BYTES = 32
NONCE_HEX = 32  # 16 random bytes

TIME_HEADER = "x-msgreach-time"
NONCE_HEADER = "x-msgreach-nonce"
SIGNATURE_HEADER = "x-msgreach-signature"


class SecretError(ValueError):
    """The secret file is missing, unreadable or too short."""


def load_secret(path: Path | str | None) -> bytes:
    """The shared secret, read the bounded way (a FIFO or a device is refused, not read)."""
    if path is None:
        raise SecretError("no secret file given (secret_file)")
    try:
        return read_helper_secret(Path(path))
    except ValueError as exc:
        raise SecretError(str(exc)) from None


def _mac(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(4, "big"))  # length-prefixed: no ambiguity between parts
        mac.update(part)
    return mac.digest()


def request_signature(secret: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return _mac(secret, b"request", method.encode(), path.encode(), timestamp.encode(), nonce.encode(), body).hex()


def answer_signature(secret: bytes, nonce: str, status: int, body: bytes) -> str:
    return _mac(secret, b"answer", nonce.encode(), str(status).encode(), body).hex()


def sign_request(secret: bytes, method: str, path: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers that authenticate one request."""
    timestamp = str(int(now if now is not None else time.time()))
    nonce = os.urandom(NONCE_HEX // 2).hex()
    return {
        TIME_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: request_signature(secret, method, path, timestamp, nonce, body),
    }


def session_key(secret: bytes, session: bytes) -> bytes:
    return _mac(secret, b"session", session)


def datagram_mac(key: bytes, direction: bytes, seq: int, body: bytes) -> bytes:
    return _mac(key, direction, seq.to_bytes(4, "big"), body)


class NonceCache:
    """Nonces seen within the window; bounded, so a flood cannot grow it without end (when full,
    new requests are refused until old nonces expire: refusing is the safe side)."""

    def __init__(self, window: float = WINDOW_SECONDS, capacity: int = 200_000):
        self.window = window
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, nonce: str, now: float) -> bool:
        """True when the nonce is new (and is now remembered); False for a replay or a full cache."""
        self._expire(now)
        if nonce in self._seen or len(self._seen) >= self.capacity:
            return False
        self._seen[nonce] = now + 2 * self.window  # a time can be `window` old or ahead
        return True

    def _expire(self, now: float) -> None:
        while self._seen:
            oldest_expiry = next(iter(self._seen.values()))
            if oldest_expiry > now:
                break
            self._seen.popitem(last=False)


def _hex(value: str, chars: int) -> bool:
    return len(value) == chars and all(c in "0123456789abcdef" for c in value)


class Verifier:
    """The helper's check of one request: the reason it is refused, or None when it is good."""

    def __init__(self, secret: bytes, window: float = WINDOW_SECONDS, nonces: NonceCache | None = None):
        self._secret = secret
        self.window = window
        self.nonces = nonces or NonceCache(window)

    def refuse(self, method: str, path: str, headers: dict[str, str], body: bytes, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        timestamp, nonce, signature = (headers.get(h, "") for h in (TIME_HEADER, NONCE_HEADER, SIGNATURE_HEADER))
        if not (timestamp and nonce and signature):
            return "unauthenticated"
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or not _hex(nonce, NONCE_HEX):
            return "malformed"
        if not _hex(signature.lower(), 2 * MAC_BYTES):  # compare_digest refuses non-ASCII text
            return "malformed"
        expected = request_signature(self._secret, method, path, timestamp, nonce, body)
        if not hmac.compare_digest(expected, signature.lower()):
            return "bad_signature"
        if abs(now - int(timestamp)) > self.window:
            return "stale"
        if not self.nonces.add(nonce, now):
            return "replayed"
        return None

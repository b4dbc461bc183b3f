"""Who may use the listener, and how it is reached: basic-auth users, the TLS context, headers.

Two sources, one shape: the config's `listen.tls` / `listen.basic_auth` (one user, the password
read from a secret file or variable) or exporter-toolkit's web config (`run --web.config.file`:
users with bcrypt hashes, TLS versions and client certificates, extra headers).

Credentials are compared as bytes (a user name or password outside ASCII is UTF-8, as browsers
and curl send it): any header a client sends is an answer, 401 at worst, never an exception. A
bcrypt check costs tens of milliseconds of CPU: it runs in a worker thread, one at a time, so the
rounds and the other requests go on; a password that passed is remembered (a digest of it, never
the password) and is not checked again, as the toolkit does. An unknown user costs a check all
the same, so the time of a 401 does not tell which user names exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ssl
from collections import OrderedDict
from typing import Protocol

from probe.config import Listen
from probe.config.webconfig import WebConfig

_REMEMBERED = 16  # passwords that passed, per process: Prometheus, a healthcheck, a person or two


class _Secret(Protocol):
    def matches(self, password: bytes) -> bool: ...


class _Plain:
    """`listen.basic_auth`'s secret, compared in constant time."""

    def __init__(self, secret: bytes):
        self._secret = secret

    def matches(self, password: bytes) -> bool:
        return hmac.compare_digest(password, self._secret)


class _Bcrypt:
    def __init__(self, hashed: bytes):
        self._hashed = hashed

    def matches(self, password: bytes) -> bool:
        import bcrypt

        try:
            return bcrypt.checkpw(password, self._hashed)
        except ValueError:  # bcrypt refuses passwords over 72 bytes (and a hash it cannot read)
            return False


# What an unknown user's password is checked against, so that a 401 takes as long for every name
# (a real hash at cost 10, the toolkit's usual: bcrypt refuses a malformed one at once).
_NOBODY_BCRYPT = b"$2b$10$HsB9pbYyBuMEkU0uQwCTOuYiwC5DZvKDXIXS9hJWN7fHlQCecLXNK"
_NOBODY_PLAIN = b"\0" * 32


class Access:
    def __init__(self, users: dict[bytes, _Secret], tls: ssl.SSLContext | None = None, headers: dict[str, str] | None = None):
        self.tls = tls
        self._one_at_a_time = asyncio.Semaphore(1)
        self._set(users, headers or {})

    def _set(self, users: dict[bytes, _Secret], headers: dict[str, str]) -> None:
        self.headers = dict(headers)
        self._users = users
        self._slow = any(isinstance(secret, _Bcrypt) for secret in users.values())
        self._nobody: _Secret = _Bcrypt(_NOBODY_BCRYPT) if self._slow else _Plain(_NOBODY_PLAIN)
        self._passed: OrderedDict[bytes, None] = OrderedDict()  # a password that passed before may not pass now

    def update(self, web: WebConfig) -> None:
        """A reloaded web config (SIGHUP): its users and headers from the next request on, its
        certificate and TLS settings from the next handshake on. TLS cannot be turned on or off
        on a listening socket: that needs a restart (ValueError, the running settings kept)."""
        if (web.tls_server_config is None) != (self.tls is None):
            raise ValueError("tls_server_config was added or removed: turning TLS on or off needs a restart")
        if web.tls_server_config is not None and self.tls is not None:
            web.tls_server_config.configure(self.tls)
        self._set(_web_users(web), web.http_server_config.headers)

    @classmethod
    def of_listen(cls, listen: Listen) -> Access:
        tls = None
        if listen.tls is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(str(listen.tls.cert_file), str(listen.tls.key_file))
        users: dict[bytes, _Secret] = {}
        if listen.basic_auth is not None:
            password = listen.basic_auth.password()
            if not password.strip():
                # The config refuses this at load; this is the last line before an open listener.
                raise ValueError("basic auth is configured but its secret is empty: refusing to serve")
            users[listen.basic_auth.username.encode()] = _Plain(password.encode())
        return cls(users, tls)

    @classmethod
    def of_web_config(cls, web: WebConfig) -> Access:
        tls = web.tls_server_config.context() if web.tls_server_config is not None else None
        return cls(_web_users(web), tls, web.http_server_config.headers)

    @property
    def protected(self) -> bool:
        """Whether requests need credentials."""
        return bool(self._users)

    async def admits(self, authorization: str) -> bool:
        """Whether an `Authorization` header's credentials are a user's."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        remembered = hashlib.sha256(len(user).to_bytes(4, "big") + user + password).digest()
        secret = self._users.get(user)
        if secret is not None and remembered in self._passed:
            self._passed.move_to_end(remembered)
            return True
        if not self._slow:
            return (secret or self._nobody).matches(password) and secret is not None
        async with self._one_at_a_time:
            matches = await asyncio.to_thread((secret or self._nobody).matches, password)
        if matches and secret is not None:
            self._passed[remembered] = None
            while len(self._passed) > _REMEMBERED:
                self._passed.popitem(last=False)
            return True
        return False


def _web_users(web: WebConfig) -> dict[bytes, _Secret]:
    return {name.encode(): _Bcrypt(hashed.encode()) for name, hashed in web.basic_auth_users.items()}


def _basic_credentials(authorization: str) -> tuple[bytes, bytes] | None:
    """(user, password) of a `Basic` header, as bytes; None for anything else."""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None

"""Call-stream sessions on the helper: opened by a signed request, closed when their stream ends.

A session ends when the helper has seen the stream's last sequence number; when its datagrams
stop for `stream_idle_seconds` (or five of the stream's own packet intervals, for slow streams):
a stream the censor cut has ended too, as far as the helper can ever tell; when no datagram came
within `stream_start_seconds` of its opening; and at the latest `max_stream_seconds + 10` after
it. So a session holds its client's slot for as long as its stream runs, not for the longest
stream allowed: a call blocked round after round keeps being measured (before, cut streams held
their slots for 130 s and from the third round the client was refused with
`too_many_sessions`). Per client at most `sessions_per_client` run at once, all clients together
at most `max_sessions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from probe.helper.settings import Limits

_HARD_SLACK = 10.0  # seconds a session may outlive the longest stream allowed
_SLOW_STREAM_INTERVALS = 5  # a stream this many of its own intervals silent has ended


@dataclass
class StreamSession:
    client: str
    key: bytes
    packets: int
    opened: float
    seen: bytearray  # one byte per sequence number: each is echoed once
    received: int = 0
    first_at: float | None = None
    last_at: float | None = None
    complete: bool = False  # the last sequence number arrived

    def ended(self, now: float, limits: Limits) -> bool:
        if self.complete or now > self.opened + limits.max_stream_seconds + _HARD_SLACK:
            return True
        if self.last_at is None:
            return now > self.opened + limits.stream_start_seconds
        return now > self.last_at + self._idle_after(limits)

    def _idle_after(self, limits: Limits) -> float:
        if self.first_at is None or self.last_at is None or self.received < 2:
            return limits.stream_idle_seconds
        interval = (self.last_at - self.first_at) / (self.received - 1)  # losses make it longer: the safe side
        return max(limits.stream_idle_seconds, _SLOW_STREAM_INTERVALS * interval)

    def accept(self, seq: int, now: float) -> bool:
        """Record an authenticated datagram; False when its sequence number is out of range or seen."""
        if seq >= self.packets or self.seen[seq]:
            return False
        self.seen[seq] = 1
        self.received += 1
        self.first_at = self.first_at if self.first_at is not None else now
        self.last_at = now
        self.complete = seq == self.packets - 1
        return True


@dataclass
class Sessions:
    limits: Limits
    _open: dict[bytes, StreamSession] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._open)

    def refusal(self, client: str, now: float) -> str | None:
        """Why a new session for `client` cannot open now, or None (ended sessions are closed first)."""
        self.close_ended(now)
        if len(self._open) >= self.limits.max_sessions:
            return "sessions_full"
        if sum(s.client == client for s in self._open.values()) >= self.limits.sessions_per_client:
            return "too_many_sessions"
        return None

    def add(self, session_id: bytes, session: StreamSession) -> None:
        self._open[session_id] = session

    def get(self, session_id: bytes, now: float) -> tuple[StreamSession | None, str]:
        """The open session, or None and why: `unauthenticated` (never opened, or long gone) or
        `expired` (its stream has ended: it is closed now)."""
        session = self._open.get(session_id)
        if session is None:
            return None, "unauthenticated"
        if session.ended(now, self.limits):
            del self._open[session_id]
            return None, "expired"
        return session, ""

    def close_ended(self, now: float) -> None:
        for session_id in [k for k, s in self._open.items() if s.ended(now, self.limits)]:
            del self._open[session_id]

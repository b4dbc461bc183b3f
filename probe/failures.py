"""Every low-level error becomes one stable failure string, here and nowhere else.

The strings are OONI's (df-007-errors, netxlite classify.go) so that msgreach's evidence can be
compared with OONI's public measurements. A few conditions OONI has no word for get a string of
our own, listed below; anything unforeseen becomes `unknown_failure: <short text>` and is logged
once, so that it can be given a name in a later release.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from typing import Final

from probe.redact import scrub

log = logging.getLogger(__name__)

# OONI's strings.
CONNECTION_REFUSED: Final = "connection_refused"
CONNECTION_RESET: Final = "connection_reset"
CONNECTION_ABORTED: Final = "connection_aborted"
TIMEOUT: Final = "generic_timeout_error"
EOF: Final = "eof_error"
HOST_UNREACHABLE: Final = "host_unreachable"
NETWORK_UNREACHABLE: Final = "network_unreachable"
DNS_NXDOMAIN: Final = "dns_nxdomain_error"
DNS_NO_ANSWER: Final = "dns_no_answer"
DNS_REFUSED: Final = "dns_refused_error"
DNS_SERVFAIL: Final = "dns_servfail_error"
DNS_BOGON: Final = "dns_bogon_error"
DNS_TEMPORARY: Final = "dns_temporary_failure"
SSL_INVALID_HOSTNAME: Final = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY: Final = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE: Final = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE: Final = "ssl_failed_handshake"

# Ours, for evidence OONI names differently (in its analysis rather than as an error).
DNS_BLOCKPAGE: Final = "dns_blockpage_address"  # answer is a known ISP block-page address
DNS_INCONSISTENT: Final = "dns_inconsistent"  # outside the service's networks and the control's answers
DNS_BAD_RESPONSE: Final = "dns_bad_response"  # a reply that does not parse as DNS
HTTP_BLOCKPAGE: Final = "http_blockpage"  # block-page fingerprint, block-page redirect or 451
HTTP_BODY_TOO_LARGE: Final = "http_body_limit"  # an answer past its size cap (the agent's /metrics): refused while reading
PROTOCOL_ERROR: Final = "protocol_error"  # the peer spoke, but not the expected protocol
STALLED: Final = "stalled"  # a transfer that stopped making progress before its end
THROTTLED: Final = "throttled"  # a transfer slower than the configured floor
UDP_STREAM_CUT: Final = "udp_stream_cut"  # a UDP stream to the helper whose echoes stopped (or never came) before its end
UDP_STREAM_LOSS: Final = "udp_stream_loss"  # a UDP stream to the helper that lost more than its floor
SIGNATURE_LOST: Final = "signature_lost"  # a protocol's first packets that did not reach the helper whole
UNAVAILABLE: Final = "check_unavailable"  # the check cannot run here (an optional dependency is missing)
NO_HELPER: Final = "no_helper_configured"  # a helper check in a round without `helpers:`
LOCAL_RESOURCE: Final = "local_resource_exhausted"  # no file descriptors, buffers or memory here: the monitor's fault
UNKNOWN: Final = "unknown_failure"

# The line to a helper abroad (probe/helper/line.py) crosses the censor the vantage measures: what
# kept one exchange with the helper from completing, besides the socket's own failures above
# (connection_reset, eof_error, generic_timeout_error, ...). A helper check that met one could
# not measure: `error` (probe.judge), never a block.
HELPER_LINE_FROZEN: Final = "helper_line_frozen"  # the answer began, then nothing came for a while: a freeze after N KB
HELPER_LINE_DRIPPING: Final = "helper_line_dripping"  # the answer kept coming, too slowly to end in time
HELPER_ANSWER_TOO_LARGE: Final = "helper_answer_too_large"  # past the exchange's size cap: refused, not read further
HELPER_ANSWER_UNSIGNED: Final = "helper_answer_unsigned"  # not signed with the shared secret: forged on the way, or another secret
HELPER_ANSWER_MALFORMED: Final = "helper_answer_malformed"  # not HTTP, or not the helper's JSON
HELPER_REFUSED: Final = "helper_refused"  # an HTTP error instead of an answer (rate limited, a bad clock, ...)
HELPER_NO_TIME: Final = "helper_no_time"  # the round's deadline left no time for the exchange
HELPER_CANNOT_SAY: Final = "helper_error"  # the helper answered, but not for this target (unknown to it, its own controls failed)

_ERRNO: Final[dict[int, str]] = {
    errno.ECONNREFUSED: CONNECTION_REFUSED,
    errno.ECONNRESET: CONNECTION_RESET,
    errno.EPIPE: CONNECTION_RESET,
    errno.ECONNABORTED: CONNECTION_ABORTED,
    errno.ETIMEDOUT: TIMEOUT,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.EHOSTDOWN: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.ENETDOWN: NETWORK_UNREACHABLE,
    errno.EADDRNOTAVAIL: NETWORK_UNREACHABLE,  # e.g. the configured source address is gone
    errno.EACCES: HOST_UNREACHABLE,  # ICMP administratively prohibited (reject rules)
    errno.EPERM: HOST_UNREACHABLE,  # a local firewall's reject
    errno.EMFILE: LOCAL_RESOURCE,  # out of file descriptors: says nothing about the network
    errno.ENFILE: LOCAL_RESOURCE,
    errno.ENOBUFS: LOCAL_RESOURCE,
    errno.ENOMEM: LOCAL_RESOURCE,
}

# OpenSSL X509 verify codes -> OONI (x509_vfy.h).
_X509: Final[dict[int, str]] = {
    62: SSL_INVALID_HOSTNAME,  # X509_V_ERR_HOSTNAME_MISMATCH
    64: SSL_INVALID_HOSTNAME,  # X509_V_ERR_IP_ADDRESS_MISMATCH
    2: SSL_UNKNOWN_AUTHORITY,  # unable to get issuer certificate
    18: SSL_UNKNOWN_AUTHORITY,  # depth zero self-signed
    19: SSL_UNKNOWN_AUTHORITY,  # self-signed in chain
    20: SSL_UNKNOWN_AUTHORITY,  # unable to get local issuer
    21: SSL_UNKNOWN_AUTHORITY,  # unable to verify leaf signature
}

_GAI: Final[dict[int, str]] = {
    socket.EAI_NONAME: DNS_NXDOMAIN,
    socket.EAI_AGAIN: DNS_TEMPORARY,
    socket.EAI_FAIL: DNS_SERVFAIL,
}
if hasattr(socket, "EAI_NODATA"):
    _GAI[socket.EAI_NODATA] = DNS_NO_ANSWER

_logged: set[str] = set()


class Failure(Exception):
    """Raised by checks for conditions they detect themselves; carries the failure string."""

    def __init__(self, failure: str, detail: str = ""):
        self.failure = failure
        super().__init__(f"{failure}: {detail}" if detail else failure)


def classify(exc: BaseException) -> str:
    """Map an exception (from sockets, ssl, dnspython or httpx) to one stable failure string."""
    for cause in _chain(exc):
        failure = _classify_one(cause)
        if failure is not None:
            return failure
    # Free text from a remote end may carry the vantage's public address: scrubbed like all evidence.
    text = scrub(f"{type(exc).__name__}: {exc}")[:120]
    if type(exc).__name__ not in _logged:
        _logged.add(type(exc).__name__)
        log.warning("unclassified failure %s (reported as %s)", text, UNKNOWN)
    return f"{UNKNOWN}: {text}"


def as_evidence(exc: BaseException) -> dict[str, str]:
    """{"failure": …} for an outcome record, plus "detail" when a check's own Failure says more."""
    evidence = {"failure": classify(exc)}
    if isinstance(exc, Failure) and str(exc) != exc.failure:
        evidence["detail"] = str(exc)[:200]
    return evidence


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first (httpx and dnspython wrap the real error)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _classify_one(exc: BaseException) -> str | None:
    if isinstance(exc, Failure):
        return exc.failure
    # Order matters: SSLCertVerificationError is an SSLError is an OSError.
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _X509.get(exc.verify_code, SSL_INVALID_CERTIFICATE)
    if isinstance(exc, ssl.SSLZeroReturnError | ssl.SSLEOFError):
        return EOF
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").upper()
        return EOF if "UNEXPECTED_EOF" in reason else SSL_FAILED_HANDSHAKE
    if type(exc).__module__.startswith("dns."):  # dnspython's: imported by then (see _dns_failure)
        failure = _dns_failure(exc)
        if failure is not None:
            return failure
    if isinstance(exc, socket.gaierror):
        return _GAI.get(exc.errno, DNS_SERVFAIL) if exc.errno is not None else DNS_SERVFAIL
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | socket.timeout):
        return TIMEOUT
    if type(exc).__module__.startswith(("httpx", "httpcore")):  # imported by then (see _http_failure)
        failure = _http_failure(exc)
        if failure is not None:
            return failure
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return EOF
    if isinstance(exc, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(exc, ConnectionResetError) and not exc.args:
        # asyncio's TLS layer reports a FIN during the handshake as a bare ConnectionResetError
        # (sslproto.eof_received); a real RST arrives with errno ECONNRESET.
        return EOF
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return CONNECTION_RESET
    if isinstance(exc, ConnectionAbortedError):
        return CONNECTION_ABORTED
    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    return None


# QUIC closes carrying a TLS alert (RFC 9001 §4.8: CRYPTO_ERROR 0x100 + alert).
_ALERT_UNKNOWN_CA: Final = 48
_ALERT_CERTIFICATE: Final = frozenset({42, 43, 44, 45, 46})


def quic_close(error_code: int, reason: str = "") -> str:
    """A QUIC CONNECTION_CLOSE (the peer's, or our TLS stack's) as a failure string."""
    if error_code == 0:
        return EOF  # closed without an error before the exchange completed
    if 0x100 <= error_code <= 0x1FF:
        alert = error_code - 0x100
        text = reason.lower()
        if alert == _ALERT_UNKNOWN_CA or "issuer" in text or "self-signed" in text or "self signed" in text:
            return SSL_UNKNOWN_AUTHORITY
        if alert in _ALERT_CERTIFICATE:
            return SSL_INVALID_HOSTNAME if "hostname" in text or "doesn't match" in text else SSL_INVALID_CERTIFICATE
        return SSL_FAILED_HANDSHAKE
    return PROTOCOL_ERROR


# Failures the monitor, not the network, is to blame for (probe.judge gives them `error`).
MONITOR: Final = frozenset({UNAVAILABLE, LOCAL_RESOURCE, NO_HELPER})

# Failures that say "something on the path stopped this" (as opposed to a server's own answer).
INTERFERENCE: Final = frozenset(
    {CONNECTION_RESET, CONNECTION_ABORTED, TIMEOUT, EOF, HOST_UNREACHABLE, CONNECTION_REFUSED, NETWORK_UNREACHABLE}
)


def _http_failure(exc: BaseException) -> str | None:
    # httpx and httpcore are imported here, not at the top: a round whose checks use neither (the
    # http check speaks HTTP/1.1 itself) never loads them (their import: docs/benchmarks.md, issue 22),
    # and an exception of theirs means they are loaded already.
    from probe._httpcore import httpcore, httpx

    if isinstance(exc, httpx.TimeoutException | httpcore.TimeoutException):
        return TIMEOUT
    if isinstance(exc, httpx.RemoteProtocolError | httpcore.RemoteProtocolError):
        # httpx (httpcore) says RemoteProtocolError when the server closes without (a complete) response.
        text = str(exc).lower()
        return EOF if "disconnected" in text or "closed" in text else PROTOCOL_ERROR
    return None


def _dns_failure(exc: BaseException) -> str | None:
    # dnspython is imported here, not at the top: a process whose checks ask no resolver never
    # loads it, and an exception from dnspython means it is loaded already.
    from probe._dnspython import dns

    if isinstance(exc, dns.resolver.NXDOMAIN):
        return DNS_NXDOMAIN
    if isinstance(exc, dns.resolver.NoAnswer):
        return DNS_NO_ANSWER
    if isinstance(exc, dns.exception.Timeout):
        return TIMEOUT
    if isinstance(exc, dns.message.ShortHeader | dns.message.TrailingJunk | dns.exception.FormError | dns.message.UnknownHeaderField):
        return DNS_BAD_RESPONSE
    return None

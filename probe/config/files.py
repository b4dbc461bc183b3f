"""Files a config names, read the one safe way: regular files only, size-capped, checked for
what they must hold (a PEM bundle with a certificate, a loadable certificate and key, a
non-empty secret) at load, so `check-config` refuses what `run` would trip over later.

Standard library only. Errors are ValueError with a message fit for a config problem.
"""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path

MAX_YAML_BYTES = 1024 * 1024  # a config or catalog; the shipped ones are a few KB
MAX_PEM_BYTES = 4 * 1024 * 1024  # a CA bundle (the system's is ~200 KB), a certificate, a key
MAX_SECRET_BYTES = 64 * 1024
MIN_HELPER_SECRET_BYTES = 16  # the helper's shared secret: the helper and check-config refuse shorter


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The content of a regular file of at most `max_bytes`. A device (/dev/zero), a FIFO or a
    directory is refused without reading it (the open does not block on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"{path} is larger than {max_bytes} bytes")
        chunks, size = [], 0
        while size <= max_bytes:  # the file may grow after fstat: never read past the cap
            chunk = os.read(fd, min(65536, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise ValueError(f"{path} is larger than {max_bytes} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def not_a_regular_file(path: Path) -> str | None:
    """Why a file msgreach writes to may not be written there: a symbolic link (it would send
    the writes wherever it points), a FIFO, a device, a socket or a directory. None when the path
    is a regular file, nothing yet, or cannot be looked at (the write will say why)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return f"{path} is {file_kind(mode)}: msgreach writes only to a regular file (or creates one)"


def file_kind(mode: int) -> str:
    """What kind of file an `st_mode` describes, for a message."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def read_text(path: Path, max_bytes: int) -> str:
    try:
        return read_bytes(path, max_bytes).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None


def check_ca_bundle(path: Path) -> Path:
    """A PEM file holding at least one certificate, loaded as the TLS checks load it."""
    read_bytes(path, MAX_PEM_BYTES)  # regular, bounded, readable: before OpenSSL opens it
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a PEM bundle of certificates ({_reason(exc)})") from None
    stats = context.cert_store_stats()
    if stats.get("x509", 0) + stats.get("x509_ca", 0) == 0:
        raise ValueError(f"{path} holds no certificate")
    return path


def check_cert_chain(cert_file: Path, key_file: Path) -> None:
    """A certificate (chain) and its private key, loaded as the listener loads them. An
    encrypted key is refused: the listener has nobody to ask for its passphrase."""
    read_bytes(cert_file, MAX_PEM_BYTES)
    read_bytes(key_file, MAX_PEM_BYTES)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert_file), str(key_file), password=_no_passphrase)
    except (ssl.SSLError, OSError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot load the certificate {cert_file} with the key {key_file} ({_reason(exc)})") from None


def read_secret(path: Path) -> str:
    """A secret from a file: its content without surrounding whitespace, never empty."""
    try:
        secret = read_text(path, MAX_SECRET_BYTES).strip()
    except ValueError as exc:
        raise ValueError(f"secret file: {exc}") from None
    if not secret:
        raise ValueError(f"the secret file {path} is empty")
    return secret


def read_helper_secret(path: Path) -> bytes:
    """A helper's shared secret (monitor and helper read it the same way): the file's bytes
    without surrounding whitespace, at least MIN_HELPER_SECRET_BYTES of them."""
    try:
        secret = read_bytes(path, MAX_SECRET_BYTES).strip()
    except ValueError as exc:
        raise ValueError(f"secret file: {exc}") from None
    if not secret:
        raise ValueError(f"the secret file {path} is empty")
    if len(secret) < MIN_HELPER_SECRET_BYTES:
        raise ValueError(f"the secret in {path} is shorter than {MIN_HELPER_SECRET_BYTES} bytes (the helper refuses it)")
    return secret


def _no_passphrase() -> bytes:
    raise ValueError("the key is encrypted")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

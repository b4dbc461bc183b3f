"""Bulk transfers from and to the helper (a freeze keyed on the address, the name or the
direction): a plain TCP port and a TLS port. The client opens a connection (TLS: with whatever
SNI it likes; the helper's certificate is self-made and not validated, the name is what a censor
reads), sends one signed line `{"time", "nonce", "bytes", "signature"}`, and the helper sends that
many bytes (bounded). With `"direction": "upload"` (signed for `UPLOAD_PATH`, so that a download's
signature cannot be replayed as an upload) the client sends that many bytes after the line and
the helper, having read them all (bounded in bytes and time), answers one line: the count."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probe.helper import parsing
from probe.helper.auth import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIME_HEADER,
    request_signature,
)

METHOD, PATH = "BULK", "/v1/bulk"
UPLOAD_PATH = "/v1/bulk/upload"
UPLOAD = "upload"
MAX_BYTES = 1024 * 1024
_CHUNK = 1024  # small TLS records: a freeze point is seen to the kilobyte, not lost in a 16 KB record


def signed_line(secret: bytes, size: int, timestamp: str, nonce: str, *, upload: bool = False) -> bytes:
    signature = request_signature(secret, METHOD, UPLOAD_PATH if upload else PATH, timestamp, nonce, str(size).encode())
    data: dict[str, str | int] = {"time": timestamp, "nonce": nonce, "bytes": size, "signature": signature}
    if upload:
        data["direction"] = UPLOAD
    return json.dumps(data).encode() + b"\n"


def parse_line(line: bytes) -> tuple[dict[str, str], int, bool] | None:
    """(headers for the Verifier, size, upload) or None when the line is not one (strictly:
    `bytes` a JSON integer in range, the others ASCII text; `1e400`, `true` or a nested value is
    not a size; `direction` absent or "upload")."""
    try:
        data = parsing.json_object(line)
        size = parsing.integer(data.get("bytes"), 1, MAX_BYTES)
        headers = {name: parsing.ascii_text(data.get(key), 128) for name, key in
                   ((TIME_HEADER, "time"), (NONCE_HEADER, "nonce"), (SIGNATURE_HEADER, "signature"))}
        direction = data.get("direction")
        if direction is not None and direction != UPLOAD:
            return None
    except parsing.Malformed:
        return None
    return headers, size, direction == UPLOAD


def self_signed_context() -> ssl.SSLContext:
    """A TLS server context with a fresh self-made certificate (any SNI is accepted)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "msgreach-helper")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:  # ssl loads chains from files only
        cert_path, key_path = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context.load_cert_chain(str(cert_path), str(key_path))
    return context


async def receive(reader: asyncio.StreamReader, size: int) -> int:
    """Read and count (not keep) up to `size` bytes of an upload; the count at EOF."""
    received = 0
    while received < size:
        chunk = await reader.read(min(65536, size - received))
        if not chunk:
            break
        received += len(chunk)
    return received


async def send(writer: asyncio.StreamWriter, size: int) -> None:
    left = size
    while left > 0:
        chunk = os.urandom(min(_CHUNK, left))  # incompressible
        writer.write(chunk)
        await writer.drain()
        left -= len(chunk)

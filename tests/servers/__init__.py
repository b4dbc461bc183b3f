"""Real servers for the tests, on loopback only (127.0.0.0/8), started and stopped by fixtures.

Import them as `servers.<module>` (tests/conftest.py puts `tests/` on sys.path, as pytest does
for a rootdir conftest without `__init__.py`). Each module here is independent; several helpers
add files, so none of them imports anything but the standard library, cryptography and dnspython.

- `testca`: a test CA and leaf certificates made with `cryptography` in the test session.
- `loop`: a background event loop thread, so servers serve sync tests and subprocesses too.
- `dnsserver`: a DNS server (UDP, TCP, DoT, DoH) whose answers a test chooses per name.
- `hostile`: TLS and TCP servers that misbehave on purpose (reset, silence, FIN after the
  ClientHello, an SNI-filtering front, a full accept queue), and an HTTP server with block-page
  and hostile behaviours chosen by the request path.
- `socks5`: a SOCKS5 proxy (no auth, CONNECT) for vantages configured with `socks5:`.
"""

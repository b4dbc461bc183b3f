"""`msgreach helper`: the counterpart an operator runs outside the region, and the monitor's side
of it (see ../shared/CONTRACT.md, "Helper", and docs/helper.md).

- `auth`: the shared secret, signed requests and datagrams, the replay window.
- `wire`: the datagram formats (stream packets, the STUN-like opening) and the API paths.
- `limits`: per-client rate and byte bounds.
- `server`: the helper itself (HTTP API, UDP echo, probe catchers, its own /metrics).
- `client`: the monitor's side (signed calls, the per-round control measurement hook).
"""

"""The checks, one module each, all with the same shape (see `probe.checks.base`).

To add a check: write `probe/checks/NAME.py` with `NAME`, `Params` and `run`, list it here, and put
its `Params` model in `probe/params.py` (`CHECK_PARAMS`), where the config validates it.
"""

from __future__ import annotations

from types import ModuleType

from probe.checks import dns, http, mtproto, quic, stun, tcp, throughput, tls, whatsapp_chat

REGISTRY: dict[str, ModuleType] = {
    module.NAME: module for module in (dns, tcp, tls, http, mtproto, whatsapp_chat, quic, stun, throughput)
}

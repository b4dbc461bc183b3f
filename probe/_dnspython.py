"""dnspython, imported in this one place, with its optional stacks off.

dnspython switches on DNS over HTTPS and QUIC, and trio, whenever their packages are installed,
and then imports them with `dns.query` (httpx2, h2, aioquic, trio: memory a process that never
uses them pays for; docs/benchmarks.md). msgreach sends its DoH through its own httpx client (`probe.resolvers`), so
they stay off, whatever else is installed beside it. Modules of probe/ write
`from probe._dnspython import dns` instead of importing dnspython themselves.
"""

import dns._features

for _feature in ("doh", "doq", "trio"):
    dns._features.force(_feature, False)

import dns.asyncquery  # noqa: E402 - after the switches above
import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.resolver  # noqa: E402

__all__ = ["dns"]

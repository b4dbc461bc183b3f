"""httpcore and httpx, imported in this one place, without trio.

httpcore imports trio whenever it is installed, to run under trio as well as asyncio. msgreach
runs on asyncio only (httpcore then uses anyio), and trio with what it brings (attrs,
sortedcontainers, outcome, idna's tables…) is 4.6 MiB of a `run` process that never uses it
(docs/benchmarks.md, issue #22). The container does not install it, test installs do (selenium
needs it). So trio is hidden while httpcore is imported; a process that imports trio itself,
before or after, gets it as usual. Modules of probe/ write `from probe._httpcore import
httpcore, httpx` instead of importing them themselves (as `probe._dnspython` for dnspython).
"""

import sys
from typing import cast

_HIDE_TRIO = "trio" not in sys.modules
if _HIDE_TRIO:
    sys.modules["trio"] = None  # type: ignore[assignment]  # `import trio` raises ImportError there
try:
    import httpcore
    import httpx
finally:
    if _HIDE_TRIO and "trio" in sys.modules and cast(object, sys.modules["trio"]) is None:
        del sys.modules["trio"]

__all__ = ["httpcore", "httpx"]

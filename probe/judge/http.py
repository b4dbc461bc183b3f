"""http: block-page fingerprints, and what a request cut before any answer means.

The service's own status code and page are never a signal (OONI's worst false positives came
from services changing them): only a 451, a redirect to a known block-page host, or a known
block-page marker in the body mean `http_blocked` by themselves. A request cut before any
response began was sent again on fresh connections, with the real name and with a decoy (SNI
for https, Host for plain http): only the decoy passing while the real name fails names a
technique. A response that began and then failed (a drip, an early close) is the server's.
"""

from __future__ import annotations

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.model import Fault, Finding, HTTPExchange, TLSHandshake, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.HTTP_BLOCKED


def analyse(exchange: HTTPExchange, facts: RoundFacts) -> Analysis:
    failure = exchange.failure
    if failure is None:
        page = exchange.blockpage
        if page is None:
            return Analysis.passed()
        reason = Reason("blockpage", {"kind": page.kind, "match": page.match})
        return Analysis.failed(failures.HTTP_BLOCKPAGE, Finding(TECHNIQUE, Fault.PATH, "blockpage_fingerprint", reason))
    return Analysis.failed(failure, _cut(exchange, failure))


def _cut(exchange: HTTPExchange, failure: str) -> Finding:
    if exchange.status_code is not None:
        return Finding(TECHNIQUE, Fault.SERVER, "", Reason("response_began"))
    if failure not in failures.INTERFERENCE:
        return Finding(TECHNIQUE, Fault.SERVER if failure == failures.PROTOCOL_ERROR else Fault.UNSEPARATED, "", Reason("not_http"))
    same, decoy = exchange.same_name, exchange.decoy
    https = isinstance(decoy, TLSHandshake)
    differential = "decoy_sni" if https else "decoy_host"
    if same is not None and same.failure is None:
        return Finding(TECHNIQUE, Fault.SERVER, differential, Reason("same_name_answered"))
    if decoy is not None and decoy.failure is None:
        name = decoy.sni if isinstance(decoy, TLSHandshake) else decoy.host
        return Finding(Verdict.SNI_BLOCKED if https else TECHNIQUE, Fault.PATH, differential, Reason("decoy_answered", {"decoy": name}))
    return Finding(TECHNIQUE, Fault.UNSEPARATED, "", Reason("decoy_request_fails", {"failure": str(decoy.failure if decoy else None)}))

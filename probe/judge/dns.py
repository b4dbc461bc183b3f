"""dns: each resolver's answer against the control resolver and the resolvers' health.

A vantage resolver's answer is blocking evidence only when the resolver is healthy (it resolved
the control sites this round: a dead resolver fails every name and says nothing about one
service) and a control resolver answered the same name (otherwise NXDOMAIN may be the truth).
Tampering is judged on the answer itself: bogons, known block-page addresses, or addresses
outside the service's networks that are also disjoint from the control's answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from probe import failures
from probe.judge.analysis import Analysis, RoundFacts
from probe.model import DNSEvidence, DNSQuery, Fault, Finding, Verdict
from probe.reasons import Reason

TECHNIQUE = Verdict.DNS_BLOCKED

# Failures of a resolver that, for a name the control resolves, mean "this name is withheld".
_WITHHELD = frozenset(
    {failures.DNS_NXDOMAIN, failures.DNS_NO_ANSWER, failures.DNS_SERVFAIL, failures.DNS_REFUSED, failures.TIMEOUT, failures.DNS_BAD_RESPONSE}
)
# Failures a control resolver may share with the vantage's: the name really does not resolve.
_GLOBAL = frozenset({failures.DNS_NXDOMAIN, failures.DNS_NO_ANSWER, failures.DNS_SERVFAIL})


def judge_answer(query: DNSQuery, queries: Sequence[DNSQuery], facts: RoundFacts) -> tuple[str, str | None]:
    """One resolver's answer -> (judgement, the failure or fact behind it); judgement is
    ok|withheld|tampered|global|inconclusive|unhealthy|control. The dns check uses it too, to
    go on with the addresses of the answers judged ok."""
    if query.control:
        return "control", query.failure
    healthy = facts.healthy_resolvers
    if healthy is not None and query.resolver not in healthy:
        return "unhealthy", "resolver failed the control names too"
    controls = [q for q in queries if q.control]
    control_addresses = {a for c in controls for a in c.addresses}
    if query.failure is not None:
        if facts.control_target and control_addresses:
            # Control phase: what fails here is the resolver, not the control site. It stays out
            # of the healthy set (and is ignored for the services); the control is not failed.
            return "unhealthy", query.failure
        if query.failure in _WITHHELD and control_addresses:
            return "withheld", query.failure
        if controls and all(c.failure in _GLOBAL for c in controls):
            return "global", query.failure
        return "inconclusive", query.failure
    if query.bogons:
        return "tampered", failures.DNS_BOGON
    if query.blockpage_addresses:
        return "tampered", failures.DNS_BLOCKPAGE
    if query.outside_networks and control_addresses and control_addresses.isdisjoint(query.addresses):
        return "tampered", failures.DNS_INCONSISTENT
    return "ok", None


def judge_answers(queries: Sequence[DNSQuery], facts: RoundFacts) -> None:
    """Every answer's judgement, written into its record (the judge's reading, for people)."""
    for query in queries:
        query.judgement, query.reason = judge_answer(query, queries, facts)


def analyse(evidence: DNSEvidence, facts: RoundFacts) -> Analysis:
    queries = evidence.resolvers
    judge_answers(queries, facts)
    tampered = next((q for q in queries if q.judgement == "tampered"), None)
    if tampered is not None:
        answer = tampered.reason or failures.DNS_BOGON
        differential = "control_resolver" if answer == failures.DNS_INCONSISTENT else "answer"
        reason = Reason("resolver_answered", {"resolver": tampered.resolver, "failure": answer})
        return Analysis.failed(answer, Finding(Verdict.DNS_TAMPERED, Fault.PATH, differential, reason))
    withheld = next((q for q in queries if q.judgement == "withheld"), None)
    if withheld is not None:
        reason = Reason("resolver_withholds", {"resolver": withheld.resolver})
        return Analysis.failed(withheld.reason or failures.DNS_NO_ANSWER, Finding(Verdict.DNS_BLOCKED, Fault.PATH, "control_resolver", reason))
    if not evidence.addresses:
        # No resolver, control included, gave an address: the name does not resolve anywhere
        # we can see. Not evidence of a block.
        failure = next((q.failure for q in queries if q.failure), failures.DNS_NO_ANSWER)
        evidence.control_agrees = any(q.judgement == "global" for q in queries)
        if evidence.control_agrees:
            return Analysis.failed(failure, Finding(Verdict.DNS_BLOCKED, Fault.SERVER, "control_resolver", Reason("control_resolver_agrees")))
        return Analysis.failed(failure, Finding(Verdict.DNS_BLOCKED, Fault.UNSEPARATED, "", Reason("no_resolver_answered")))
    return Analysis.passed()

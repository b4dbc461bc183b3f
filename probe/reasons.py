"""Why a verdict is what it is, as data: a key and its parameters, rendered in English from one
table (`ENGLISH`). The judge states reasons this way only; the JSON carries the rendered text
(`reason`, as always) beside the key and parameters, so that a page can say the same in
another language, and a reader can tell reasons apart without parsing text.

`ENGLISH` is the one English text of every engine reason: the status page takes it as its own
English templates, and keeps only the other languages' (probe/status_texts.py, where a
translator works; its tests hold both tables to the same keys and parameters).

Standard library only (probe.model imports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Union

# A parameter is a word, a number, another reason (a clause quoted inside this one), or a list
# of reasons (joined with `; ` in English).
ReasonParam = Union[str, int, float, "Reason", tuple["Reason", ...]]
JSONReason = dict[str, object]


@dataclass(frozen=True, slots=True)
class Reason:
    """One clause of an explanation: `ENGLISH[key]` with `params` filled in."""

    key: str
    params: Mapping[str, ReasonParam] = field(default_factory=dict)

    def __str__(self) -> str:
        return render(self)

    def as_json(self) -> JSONReason:
        data: JSONReason = {"key": self.key}
        if self.params:
            data["params"] = {name: _param_json(value) for name, value in self.params.items()}
        return data


def _param_json(value: ReasonParam) -> object:
    if isinstance(value, Reason):
        return value.as_json()
    if isinstance(value, tuple):
        return [item.as_json() for item in value]
    return value


def render(reason: Reason | str) -> str:
    """The English text of a reason (a plain string, from a record made before reasons were
    structured, is its own text)."""
    if isinstance(reason, str):
        return reason
    template = ENGLISH.get(reason.key)
    values = {name: _rendered(value) for name, value in reason.params.items()}
    if template is None:  # a key this version does not know (an archive from a newer one)
        return f"{reason.key} {values}" if values else reason.key
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return f"{reason.key} {values}"


def _rendered(value: ReasonParam) -> str | int | float:
    if isinstance(value, Reason):
        return render(value)
    if isinstance(value, tuple):
        return "; ".join(render(item) for item in value)
    return value


def render_clauses(clauses: Iterable[Reason]) -> str:
    """Clauses joined as the judge always wrote them: `; ` between them, a parenthesis (the
    differential) after a space."""
    text = ""
    for clause in clauses:
        part = render(clause)
        if not text:
            text = part
        elif part.startswith("("):
            text = f"{text} {part}"
        else:
            text = f"{text}; {part}"
    return text


def text(words: str) -> Reason:
    """A reason that is only its words: what a helper abroad or an older record said."""
    return Reason("text", {"text": words})


# The English text of every reason key. Keep a key's meaning when changing its words: archives
# and translations refer to keys.
ENGLISH: dict[str, str] = {
    "text": "{text}",
    # --- a target, from its first failing check (probe.judge.verdicts) ---
    "check_failed": "{check}: {failure}",
    "monitor_could_not_measure": "the monitor could not measure",
    "helper_line_failed": "{line}: the monitor could not measure through the helper",
    "no_finding": "the check stated no finding (a bug of msgreach)",
    "differential": "(differential: {differential})",
    "no_differential": "no differential separates a block from the server's own failure",
    "no_check_ran": "no check could run",
    "check_still_running": "a check was still running",
    "round_deadline": "round deadline reached",
    "retry_cut": "the confirming retry was cut off by the round deadline",
    "retry_inconclusive": "the confirming retry failed at the same check ({failure}) without agreeing repeats: this attempt, which agreed, stands",
    "family_blocked": "every {family} address fails while {other} connects",
    "after_trigger": (
        "measured {seconds} s after our own trigger probe ({trigger}) to {destination}, within its {cooldown} s cooldown: "
        "a timed block we may have set off, not evidence of the target"
    ),
    "control_fails_too": "{source} fails {check} too ({failure})",
    "by_control_vantage": "the control vantage",
    "by_helper": "helper {helper}",
    "vantage_controls_failed": "the vantage's control sites failed",
    "check_overran": "the check ran past every bound",
    "check_crashed": "the check itself failed (a bug of msgreach)",
    # --- a vantage, from its control sites ---
    "no_controls": "no controls configured",
    "no_international_controls": "no international control sites configured",
    "allowlist": "domestic control sites pass while every international one fails: {failed}",
    "allowlist_keyed": "on {family} the allowlist {keyed_on}",
    "keyed_on_name": "follows names (a domestic name passes to a foreign address; a foreign name or no name at a domestic address does not)",
    "keyed_on_address": "follows addresses (anything to a domestic address passes, a domestic name abroad does not)",
    "keyed_on_name_and_address": "needs both a listed name and a domestic address",
    "keyed_on_open": "is not applied (every probe passed)",
    "allowlist_probe_stopped": "the probe of {probe} was stopped: {families}",
    "allowlist_domestic_name_foreign_address": "a domestic name at a foreign address",
    "allowlist_foreign_name_domestic_address": "a foreign name at a domestic address",
    "allowlist_domestic_address_no_name": "a domestic address with no name",
    "allowlist_family": "{family} {outcome}",
    "probe_passed": "passed",
    "probe_stopped": "stopped",
    "probe_mixed": "passed and stopped in turn",
    "probe_unmeasured": "not measured",
    "site_failed": "{site} ({check}: {failure})",
    "site_verdict": "{site} ({verdict})",
    "no_control_site_passes": "no control site passes every check",
    # --- dns ---
    "resolver_answered": "{resolver} answered {failure}",
    "resolver_withholds": "{resolver} withholds the name the control resolver answers",
    "control_resolver_agrees": "the control resolver fails the name too",
    "no_resolver_answered": "no resolver gave an address and no control resolver answered",
    # --- tcp ---
    "local_resource": "the monitor ran out of a local resource",
    "control_addresses_connect": "the resolver's addresses fail while the control resolver's connect",
    "every_address_fails": "every expected address:port fails",
    # --- tls ---
    "invalid_certificate": "the certificate is invalid (e.g. expired) but not another party's",
    "certificate_not_for_name": "a certificate that does not validate for the name",
    "decoy_sni_passes": "the decoy SNI {decoy} to the same address passes",
    "server_fails_decoy": "the server fails the decoy SNI too ({failure}): its own fault",
    "decoy_fails_too": "the decoy SNI fails too ({failure})",
    "server_answer_began": "the server's answer began ({received} bytes), then the handshake failed ({failure}): a server that drips or closes mid-answer, not a cut handshake",
    "no_browser_handshake": "no browser-like handshake could be made here",
    "keyed_on_client_hello": "keyed on the ClientHello fingerprint: the browser's hello is cut ({failure}) while Python's passes to the same address and name",
    "keyed_on_fingerprint": "keyed on the ClientHello fingerprint: the {client}'s hello ({hello}) is cut ({failure}), twice, while {passing} to the same address and name pass, twice",
    "no_agreement": "the handshake fails ({failure}) but the alternated repeats do not agree: no technique is claimed",
    # --- http ---
    "blockpage": "block page ({kind}: {match})",
    "response_began": "the server's response began, then failed: not a cut request",
    "not_http": "the server did not answer as HTTP",
    "same_name_answered": "the same request with the real name on a fresh connection is answered",
    "decoy_answered": "the same request with the decoy {decoy} is answered",
    "decoy_request_fails": "the decoy request fails too ({failure})",
    # --- after TCP connected: the service's own protocol (mtproto, whatsapp_chat) ---
    "server_silent": "the server acknowledged our first bytes and never answered",
    "no_tcp_to_dc": "no TCP connection to the data centre",
    "dc_not_mtproto": "{framings}: the data centre answered, not in MTProto",
    "framings_failed": "{broken} failed after TCP connected ({failure})",
    "framings_failed_while": "{broken} failed after TCP connected ({failure}) while {passed} passed",
    "framings_failed_obfuscated2": "{broken} failed after TCP connected ({failure}) while {passed} passed: the censor matches obfuscated2 (what the apps send)",
    "framings_failed_plain": "{broken} failed after TCP connected ({failure}) while {passed} passed: the censor matches plain MTProto's first bytes",
    "no_port_connected": "no port connected",
    "chat_cut": "TCP connected, then the chat exchange failed ({failure}, at {stages})",
    "chat_server_answered": "the server answered the chat opening with {failure}",
    "hosts_share": "{count} of {total} hosts: {reason}",
    # --- quic ---
    "aioquic_missing": "aioquic is missing: QUIC was not measured",
    "quic_no_tls_result": "no TCP+TLS result to compare with (put quic after tls)",
    "quic_tls_failed_too": "TCP+TLS to the host failed too: nothing to compare with",
    "quic_request_failed": "the QUIC handshake completed, then the request failed ({failure})",
    "quic_server_ended": "the server ended the QUIC handshake ({failure})",
    "quic_singled_out": "QUIC to the host fails ({failure}) while TCP+TLS to it succeed",
    "quic_keyed_on_name": "QUIC to the host fails ({failure}) while TCP+TLS to it succeed, and a decoy SNI completes its QUIC handshake to the same address: keyed on the name",
    "quic_keyed_on_quic": "QUIC to the host fails ({failure}) while TCP+TLS to it succeed, and a decoy SNI fails too ({decoy_failure}): keyed on QUIC itself",
    # --- stun ---
    "not_stun": "the peer answered, not in STUN",
    "control_stun_silent": "the control STUN peer did not answer",
    "control_stun_answered": "no STUN answer ({failure}) while the control STUN peer {controls} answered",
    "no_control_stun": "no control STUN target to compare with",
    "control_stun_peers_silent": "the control STUN peers are silent too",
    # --- throughput ---
    "transfer_froze": "the transfer froze after {bytes} bytes: the 16–20 KB freeze",
    "transfer_stalled": "the transfer stalled after {bytes} bytes",
    "transfer_cut": "the transfer was cut ({failure}) after {bytes} bytes",
    "transfer_slow": "{rate} bytes/s, under the floor",
    "control_download_fast": "{how}, while the control download {controls} was fast",
    "control_download_fast_sni_keyed": "{how}, while the control download {controls} was fast; a decoy SNI to the same address is fast: keyed on the name",
    "control_download_fast_decoy_slow": (
        "{how}, while the control download {controls} was fast; a decoy SNI to the same address was slow too, twice in alternation: "
        "not keyed on the name"
    ),
    "transfer_froze_packets": "the transfer froze after {bytes} bytes ({packets} packets both ways): the 16–20 KB freeze",
    "transfer_stalled_packets": "the transfer stalled after {bytes} bytes ({packets} packets both ways)",
    "upload_froze_too": "{how}; the upload froze too (at {packets} packets both ways)",
    "upload_froze_download_flowed": (
        "the {kb} KB upload froze twice ({acked} bytes acknowledged, {packets} packets both ways) while the download from the "
        "same address and name flowed ({download_packets} packets): keyed on the direction"
    ),
    "upload_froze_fewer_packets": (
        "the {kb} KB upload froze twice ({acked} bytes acknowledged, {packets} packets both ways); the download from the same address and "
        "name flowed but carried fewer packets ({download_packets}): a count both ways, not the direction"
    ),
    "line_freeze": "the transfer froze ({direction}) and so did the yardstick {controls} this round: the line's freeze, not the service's",
    # --- the helper checks (udp_stream, circumvention, helper_transfer) ---
    "no_helper_configured": "no helper is configured for this round (`helpers:`)",
    # the exchange with a helper that failed (HelperExchange.failure_reason), by its failure
    "line.helper_line_frozen": "the line to the helper abroad froze after {kb} KB",
    "line.helper_line_dripping": "the helper's answer dripped: {kb} KB in {seconds} s",
    "line.connection_reset": "the line to the helper abroad was reset after {kb} KB",
    "line.eof_error": "the line to the helper abroad closed after {kb} KB",
    "line.generic_timeout_error": "no answer from the helper abroad within {seconds} s",
    "line.connection_refused": "the helper abroad refused the connection",
    "line.helper_answer_too_large": "the helper's answer passed its size cap ({kb} KB) and was refused",
    "line.helper_answer_unsigned": "the answer did not carry the helper's signature (forged on the way, or another secret)",
    "line.helper_answer_malformed": "the answer was not the helper's protocol",
    "line.helper_refused": "the helper refused the request (HTTP {http})",
    "line.helper_no_time": "the round's deadline left no time to ask the helper",
    "line.other": "the line to the helper abroad failed ({failure})",
    "stream.dropped": "dropped from its first packet",
    "stream.cut": "cut after {seconds} s",
    "stream.lost": "lost {share}",
    "stream.lost_and": "lost {share}, {how}",
    "stream_both_fail": "the call stream: {call}; the control stream of the same shape failed too ({control}): the path to the helper, not the call",
    "stream_call_cut": "the call stream was {how} while the control stream of the same shape kept flowing (call stream lost {call_loss}, control stream lost {control_loss})",
    "stream_call_lossy": "the call stream lost {call_loss} of its packets (floor {floor}) while the control stream lost {control_loss}",
    "stream_loss_by_chance": (
        "the call stream lost {call_loss} of its packets (floor {floor}) and the control stream {control_loss}: "
        "too few packets to tell that apart from one lossy line"
    ),
    "no_probes_sent": "no probe was sent",
    "signature_seen": "{arrived} of {size} bytes arrived",
    "signature_seen_failure": "{arrived} of {size} bytes arrived, the sender saw {failure}",
    "signature_died": "the {protocol} handshake's first packet died on the way ({seen}) while neutral bytes of the same size arrived",
    "signature_and_neutral_died": "neither the {protocol} signature ({seen}) nor neutral bytes ({neutral_arrived} of {neutral_size}) reached the helper",
    "transfer_plain_failed": "even the plain transfer from the helper failed (at {kb} KB): nothing to compare",
    "transfer_no_time": "the round's deadline left no time for the {kinds} transfer(s) from the helper: nothing to compare",
    "transfer_keyed_on_name": "TLS from the helper's address with the name {sni} froze at {kb} KB while the decoy SNI {decoy} to the same address completed: keyed on the name",
    "transfer_keyed_on_address": "TLS from the helper's address froze at {kb} KB whatever the name (decoy too) while plain TCP from it completed: keyed on the address",
    "helper_upload_froze_keyed_on_direction": (
        "the upload to the helper ({kind}) froze at {kb} KB acknowledged ({packets} packets both ways) while every "
        "download from it completed ({download_packets} packets or more): keyed on the direction"
    ),
    "helper_upload_froze_fewer_packets": (
        "the upload to the helper ({kind}) froze at {kb} KB acknowledged ({packets} packets both ways); the "
        "downloads completed with fewer packets ({download_packets}): a count both ways, not the direction"
    ),
}

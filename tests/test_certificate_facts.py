"""The tls check reads a validated certificate's facts from OpenSSL's own parse (getpeercert())
and parses anything else with cryptography. Both ways must write the same facts for the same
certificate, or evidence would differ by which way a handshake went: each certificate below is
served by a real TLS server and read back over a validated handshake both ways."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from probe.checks import tls

A = x509.NameAttribute
SUBJECTS = {
    "plain": [A(NameOID.ORGANIZATION_NAME, "msgreach tests"), A(NameOID.COMMON_NAME, "web.test")],
    "escapes": [A(NameOID.ORGANIZATION_NAME, 'Acme, "Inc" + <Co>; a\\b'), A(NameOID.COMMON_NAME, "#lead and trail ")],
    "leading space": [A(NameOID.ORGANIZATIONAL_UNIT_NAME, " x"), A(NameOID.COMMON_NAME, "web.test")],
    "cyrillic": [A(NameOID.COUNTRY_NAME, "RU"), A(NameOID.LOCALITY_NAME, "Москва"), A(NameOID.ORGANIZATION_NAME, "ООО «Тест»")],
    "every short name": [
        A(NameOID.DOMAIN_COMPONENT, "test"), A(NameOID.COUNTRY_NAME, "DE"), A(NameOID.STATE_OR_PROVINCE_NAME, "Berlin"),
        A(NameOID.LOCALITY_NAME, "Berlin"), A(NameOID.STREET_ADDRESS, "Str. 1"), A(NameOID.ORGANIZATION_NAME, "O"),
        A(NameOID.ORGANIZATIONAL_UNIT_NAME, "OU 1"), A(NameOID.ORGANIZATIONAL_UNIT_NAME, "OU 2"), A(NameOID.USER_ID, "u1"),
        A(NameOID.COMMON_NAME, "web.test"),
    ],
    "extended validation": [
        A(NameOID.JURISDICTION_COUNTRY_NAME, "US"), A(NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME, "Delaware"),
        A(NameOID.JURISDICTION_LOCALITY_NAME, "Wilmington"), A(NameOID.BUSINESS_CATEGORY, "Private Organization"),
        A(NameOID.SERIAL_NUMBER, "123456"), A(NameOID.POSTAL_CODE, "19801"), A(NameOID.EMAIL_ADDRESS, "a@web.test"),
        A(NameOID.ORGANIZATION_IDENTIFIER, "VATDE-1"), A(NameOID.COMMON_NAME, "web.test"),
    ],
    "empty": [],
}
# Subjects only cryptography writes: the fast path must step aside for them.
FALLBACK = {
    "multi-valued RDN": x509.Name([x509.RelativeDistinguishedName([A(NameOID.COMMON_NAME, "web.test"), A(NameOID.ORGANIZATION_NAME, "O")])]),
    "unknown attribute": x509.Name([A(ObjectIdentifier("1.3.6.1.4.1.55555.1"), "private"), A(NameOID.COMMON_NAME, "web.test")]),
}


def _cert(tmp_path, subject: x509.Name, sans: list[str]) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return pem, key_pem


async def _validated_handshake(pem, key_pem) -> tuple[bytes, dict]:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(str(pem), str(key_pem))
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False  # some certificates here name nothing; the chain is still validated
    client_context.verify_mode = ssl.CERT_REQUIRED
    client_context.load_verify_locations(str(pem))
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1], ssl=client_context, server_hostname="web.test")
        tls_object = writer.get_extra_info("ssl_object")
        der, decoded = tls_object.getpeercert(binary_form=True), tls_object.getpeercert()
        writer.close()
        return der, decoded
    finally:
        server.close()


@pytest.mark.parametrize("label", list(SUBJECTS))
@pytest.mark.parametrize("sans", [["web.test", "*.web.test", "xn--80ak6aa92e.test"], []], ids=["sans", "no-sans"])
async def test_both_ways_give_the_same_facts(tmp_path, label, sans):
    der, decoded = await _validated_handshake(*_cert(tmp_path, x509.Name(SUBJECTS[label]), sans))
    fast = tls._from_decoded(der, decoded)
    assert fast is not None, "the validated handshake's own parse was not used"
    assert fast == tls._from_der(der)
    assert tls.certificate_facts(der, decoded) == fast


@pytest.mark.parametrize("label", list(FALLBACK))
async def test_names_only_cryptography_writes_are_parsed_by_it(tmp_path, label):
    der, decoded = await _validated_handshake(*_cert(tmp_path, FALLBACK[label], ["web.test"]))
    assert tls._from_decoded(der, decoded) is None
    assert tls.certificate_facts(der, decoded) == tls._from_der(der)


def test_an_unvalidated_handshake_is_parsed_with_cryptography(tmp_path):
    pem, _ = _cert(tmp_path, x509.Name(SUBJECTS["plain"]), ["web.test"])
    der = ssl.PEM_cert_to_DER_cert(pem.read_text())
    # getpeercert() is {} without validation: nothing to read, cryptography parses the bytes.
    facts = tls.certificate_facts(der, {})
    assert facts.subject == "CN=web.test,O=msgreach tests" and facts.dns_names == ["web.test"]


def test_start_up_loads_no_stack_a_tcp_tls_http_round_does_not_use():
    # cryptography waits for a certificate that does not validate, aioquic for `quic`, curl-cffi
    # for browser handshakes, httpx2 for dnspython's own DoH (off: see probe/__init__.py).
    import subprocess

    code = (
        "import sys, probe.runner, probe.checks.tls, probe.checks.http, probe.config;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'aioquic', 'curl_cffi', 'httpx2', 'httpcore2'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"imported at start-up, before any check needs them: {out}"


@pytest.mark.parametrize("text", ["Jun  1 12:00:00 2025 GMT", "Feb 29 23:59:59 2024 GMT", "Jan  1 00:00:00 1970 GMT", "Dec 31 23:59:59 9999 GMT"])
def test_certificate_times_read_as_the_standard_library_reads_them(text):
    assert tls._seconds(text) == ssl.cert_time_to_seconds(text)



class _Unvalidated:
    """What an unvalidated handshake's SSLObject gives `getpeercert()`: nothing decoded."""

    def getpeercert(self) -> dict:
        return {}


async def test_a_certificate_met_again_is_the_same_record(env, tmp_path):
    """Handshakes that meet one certificate share one immutable facts record (a round meets a
    service's few certificates on many targets, and again every round); another certificate gets
    its own; only the 64 met most recently are remembered."""
    ctx = env.context("valid.good.test", target={"addresses": ["127.0.0.1"]})
    first = await tls.handshake(ctx, "127.0.0.1", env.ports["web"], "valid.good.test", verify=True)
    again = await tls.handshake(ctx, "127.0.0.1", env.ports["web"], "valid.good.test", verify=False)  # unvalidated: same bytes, same facts
    assert first.failure is None and again.failure is None
    assert first.certificate is again.certificate
    with pytest.raises(AttributeError):
        first.certificate.subject = "CN=changed"  # frozen: one handshake cannot edit what all share
    for index in range(tls._SEEN_KEPT):  # as many other certificates as are remembered
        pem, _ = _cert(tmp_path, x509.Name([A(NameOID.COMMON_NAME, f"n{index}.test")]), [])
        other = tls._facts_of(ssl.PEM_cert_to_DER_cert(pem.read_text()), _Unvalidated())
        assert other.subject == f"CN=n{index}.test"
    assert len(tls._seen_facts) == tls._SEEN_KEPT
    third = await tls.handshake(ctx, "127.0.0.1", env.ports["web"], "valid.good.test", verify=True)
    assert third.certificate == first.certificate and third.certificate is not first.certificate  # read anew

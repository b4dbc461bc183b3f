"""What the evidence archive costs: appending rounds, reading the archive back (what
`msgreach evidence` and every reader do first), and the OONI export of what was read.

    PYTHONPATH=. python3 bench/evidence_archive.py [--rounds 400] [--targets 40] [--repeats 5]

Writes `--rounds` rounds of `--targets` targets each (realistic records: DNS through two
resolvers, TCP, TLS with a certificate, HTTP; one target in four failing at TLS with a decoy)
into a fresh archive under a temporary directory, then reads it back `--repeats` times. Prints
medians as a Markdown table for docs/benchmarks.md. Runs against whatever `probe` is on the
path, so the same script times two versions (e.g. an older tree unpacked with `git archive`).
Nothing here touches the network.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

from probe.config import Evidence, Vantage
from probe.evidence import Archive, read
from probe.model import (
    Certificate,
    CheckResult,
    DNSEvidence,
    DNSQuery,
    Fault,
    Finding,
    HTTPExchange,
    ServiceResult,
    TargetResult,
    TCPConnect,
    TCPEvidence,
    TLSEvidence,
    TLSHandshake,
    VantageResult,
    Verdict,
)

T0 = 1_790_000_000.0
CERT = Certificate("CN=bench.test", "CN=Bench CA", "2026-01-01", "2030-01-01", 1.9e9, "ab" * 32, ["bench.test"])


def _target(index: int) -> TargetResult:
    host, address = f"t{index}.bench.test", f"198.18.{index // 250}.{index % 250 + 1}"
    checks = [
        CheckResult("dns", True, None, 0.02, None, DNSEvidence([DNSQuery("198.18.53.1", False, [address], None, 0.01, "ok"), DNSQuery("tls://198.18.53.2", True, [address], None, 0.02, "control")], [address], "dns")),
        CheckResult("tcp", True, None, 0.01, None, TCPEvidence([TCPConnect(address, 443, None, 0.01)])),
    ]
    if index % 4 == 3:
        decoy = TLSHandshake(address, 443, "decoy.bench.test", None, "TLSv1.3", "h2", CERT, duration_seconds=0.03)
        tls = TLSEvidence([TLSHandshake(address, 443, host, "connection_reset", duration_seconds=0.02)], decoy=decoy)
        checks.append(CheckResult("tls", False, "connection_reset", 0.05, Finding(Verdict.SNI_BLOCKED, Fault.PATH, "decoy_sni", "reset"), tls))
        return TargetResult("bench", f"t{index}", host, Verdict.SNI_BLOCKED, checks, "tls: connection_reset")
    checks.append(CheckResult("tls", True, None, 0.03, None, TLSEvidence([TLSHandshake(address, 443, host, None, "TLSv1.3", "h2", CERT, duration_seconds=0.03)], CERT)))
    checks.append(CheckResult("http", True, None, 0.05, None, HTTPExchange(f"https://{host}/", address, status_code=200, body_length=1234)))
    return TargetResult("bench", f"t{index}", host, Verdict.OK, checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--targets", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    targets = [_target(i) for i in range(args.targets)]
    with tempfile.TemporaryDirectory(prefix="mrh-bench-") as directory:
        path = Path(directory) / "evidence.jsonl"
        archive = Archive(Evidence(path=path, max_bytes=16 * 1024 * 1024, keep_files=8), [Vantage(name="bench", country="RU", asn="12389")])
        appends = []
        for index in range(args.rounds):
            result = VantageResult("bench", "ok", [ServiceResult("bench", Verdict.PARTIAL, targets)], [], T0 + 60 * index, 5.0)
            started = time.perf_counter()
            archive.append(result)
            appends.append(time.perf_counter() - started)
        size = sum(f.stat().st_size for f in path.parent.iterdir())
        reads, exports = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            reading = read(path)
            reads.append(time.perf_counter() - started)
        try:
            from probe.evidence import ooni
        except ImportError:  # an older tree: no export to time
            ooni = None
        if ooni is not None:
            for _ in range(args.repeats):
                started = time.perf_counter()
                ooni.write(reading.records, io.StringIO(), reading.records)
                exports.append(time.perf_counter() - started)
    lines = len(reading.records)
    print(f"| archive | {args.rounds} rounds × {args.targets} targets = {lines} lines, {size / 2**20:.1f} MiB |")
    print(f"| append one round (median, fsync included) | {statistics.median(appends) * 1000:.2f} ms |")
    print(f"| read the archive (median of {args.repeats}) | {statistics.median(reads):.3f} s ({statistics.median(reads) / lines * 1e6:.1f} µs a line) |")
    if exports:
        print(f"| `--format ooni` of what was read (median of {args.repeats}) | {statistics.median(exports):.3f} s ({statistics.median(exports) / lines * 1e6:.1f} µs a line) |")


if __name__ == "__main__":
    main()

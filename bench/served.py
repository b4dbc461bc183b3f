"""bench/run.py's loopback TLS targets for the bench scripts that measure one piece of a round
in-process (archive_append, kept_round, publish_cpu, run_phases) and for mem_ab: set-up and teardown in one
place. bench/run_steady.py keeps its own: it imports the *measured* tree's bench/run.py, and an
older tree has no such module.

Run inside `unshare -n -m` (only loopback; /etc/hosts bind-mounted in the private mount namespace).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402 - bench/run.py: certificates, hosts, nginx, the config


@contextmanager
def served_targets(targets: int, prefix: str, concurrency: int = 16, interval: float = 60.0) -> Iterator[Path]:
    """The msgreach config of `targets` HTTPS targets served by one nginx on loopback addresses,
    with a fresh state directory (MSGREACH_STATE_DIR: no run appends to the account's own archive
    or history); nginx stopped, /etc/hosts unmounted and the directory removed after."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["MSGREACH_STATE_DIR"] = str(tmp / "state")
    nginx = None
    try:
        bench.make_certificates(tmp)
        bench.private_hosts(tmp, targets)
        nginx = bench.start_nginx(tmp, targets)
        yield bench.msgreach_config(tmp, targets, concurrency, interval)
    finally:
        bench.stop(nginx)
        subprocess.run(["umount", "/etc/hosts"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

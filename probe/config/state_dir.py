"""Where msgreach keeps what must outlive a restart (the verdict history, the evidence archive)
when the config does not say: the state directory of the XDG Base Directory specification.

In order: the config's `state_dir`; `$MSGREACH_STATE_DIR` (the container image sets it to
/var/lib/msgreach); `$STATE_DIRECTORY` (what systemd sets for a unit with `StateDirectory=`); the
directory of `evidence.path` when the config names one (where the
history always went with an archive); `$XDG_STATE_HOME/msgreach`; `~/.local/state/msgreach`.
Only paths are computed here: nothing is created until `run` or `once` writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_VARIABLE = "MSGREACH_STATE_DIR"
EVIDENCE_FILE = "evidence.jsonl"


def default_state_dir(evidence_path: Path | None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The state directory for a config without `state_dir`; None when no home is known (then
    the history lives in memory, and the evidence archive stays off unless configured)."""
    explicit = environ.get(ENV_VARIABLE, "")
    if explicit:
        return Path(explicit).expanduser()
    systemd = environ.get("STATE_DIRECTORY", "").split(":")[0]  # systemd may list several
    if os.path.isabs(systemd):
        return Path(systemd)
    if evidence_path is not None:
        return evidence_path.parent
    xdg = environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the specification: a relative value is invalid and ignored
        return Path(xdg) / "msgreach"
    home = environ.get("HOME", "")
    if not os.path.isabs(home) or home == "/":
        # No home (a service user, a container's numeric user): "/.local/state" is never right.
        return None
    return Path(home) / ".local" / "state" / "msgreach"

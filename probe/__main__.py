"""`python -m probe` and the `msgreach` command (pyproject.toml's script: `run`)."""

import gc
from typing import NoReturn


def run() -> NoReturn:
    # Start-up makes tens of thousands of objects that live as long as the process (modules,
    # classes, the config) and almost no garbage: the cyclic collector's passes over them then
    # find nothing. It is enabled again when start-up ends (probe.cli: after the config's load,
    # or once the command line is read for commands without one).
    gc.disable()
    from probe.cli import entry

    entry()


if __name__ == "__main__":
    run()

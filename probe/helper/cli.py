"""`msgreach helper [--config FILE] [--listen HOST:PORT]`: exit 2 on a bad config or no secret,
each problem with file, line and key, and no traceback."""

from __future__ import annotations

import asyncio
import sys

from probe import config as config_module
from probe.config import ConfigError
from probe.helper import settings as settings_module
from probe.helper.auth import SecretError, load_secret

EXIT_OK = 0
EXIT_USAGE = 2


def run_helper(config_path: str | None, listen: str | None) -> int:
    try:
        settings = settings_module.load(config_path)
        if listen is not None:
            settings_module.listen_address(listen)
        if settings.secret_file is None:
            raise SecretError("no secret file given")
        try:
            secret = load_secret(settings.secret_file)
        except SecretError as exc:
            raise ConfigError([settings_module.secret_problem(config_path, str(exc))]) from None
        measure = config_module.load(settings.measure)
    except SecretError as exc:
        print(f"msgreach helper: refusing to start: {exc} (set secret_file, or ${settings_module.SECRET_ENV})", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        print(f"msgreach helper: the config is not valid:\n{lines}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # --listen
        print(f"msgreach helper: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from probe.helper.server import serve

    try:
        asyncio.run(serve(settings, secret, measure, listen))
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:  # the address is taken, or cannot be bound
        print(f"msgreach helper: cannot serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK

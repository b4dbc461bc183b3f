"""Command line: `run`, `once`, `check-config`, `helper`, `evidence` (see ../shared/CONTRACT.md)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, NoReturn

from probe import __version__
from probe import config as config_module
from probe.addresses import endpoint
from probe.config import Config, ConfigError
from probe.lean import save_generated_code

if TYPE_CHECKING:
    from probe.config.webconfig import WebConfig

EXIT_OK = 0
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one paragraph, exit 2, no traceback
        self.print_usage(sys.stderr)
        print(f"msgreach: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="msgreach", description="Is WhatsApp, Telegram or Signal reachable from here, and if not, how is it blocked?")
    parser.add_argument("--version", action="version", version=f"msgreach {__version__}")
    parser.add_argument(
        "--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="msgreach's own messages (default INFO: where it listens, one line per round); libraries stay at WARNING unless DEBUG",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="the long-running monitor: scheduled rounds, /metrics, /healthz, status page")
    run.add_argument("--config", help="config file (default: the embedded default)")
    run.add_argument("--listen", type=_listen_address, help="HOST:PORT to serve on (default from config: 127.0.0.1:9910)")
    run.add_argument(
        "--web.config.file", dest="web_config", metavar="FILE",
        help="exporter-toolkit web config: tls_server_config, basic_auth_users (bcrypt), http_server_config (replaces listen.tls/basic_auth)",
    )

    once = commands.add_parser("once", help="one round of every check, then exit")
    once.add_argument("--config", help="config file (default: the embedded default)")
    once.add_argument("--service", action="append", dest="services", metavar="NAME", help="only this service (repeatable)")
    once.add_argument("--format", choices=["table", "json"], default=None, help="table (default on a terminal) or json")

    check = commands.add_parser("check-config", help="validate a config file (and a web config)")
    check.add_argument("file")
    check.add_argument("--web.config.file", dest="web_config", metavar="FILE", help="also validate this exporter-toolkit web config, as run would")

    helper = commands.add_parser("helper", help="the counterpart abroad: control measurements, call streams, circumvention probes")
    helper.add_argument("--config", help="the helper's settings file (see docs/helper.md)")
    helper.add_argument("--listen", help="HOST:PORT of its API and UDP streams (default from the settings: 0.0.0.0:9920)")

    evidence = commands.add_parser("evidence", help="verdict changes recorded in the evidence archive")
    evidence.add_argument("--config", help="config file naming the archive (default: the embedded default)")
    evidence.add_argument("--path", help="archive file (overrides the config)")
    evidence.add_argument("--since", help="RFC 3339 time or a duration such as 24h, 7d")
    evidence.add_argument("--until", help="RFC 3339 time")
    evidence.add_argument("--service", action="append", dest="services", metavar="NAME")
    evidence.add_argument("--vantage", action="append", dest="vantages", metavar="NAME")
    evidence.add_argument("--format", choices=["table", "json", "ooni"], default="table", help="ooni: every measured target as an OONI measurement, one JSON per line")
    evidence.add_argument("--rejudge", action="store_true", help="judge every stored verdict again from its observations; print each difference (exit 1 if any)")
    return parser


def _listen_address(value: str) -> str:
    """`--listen` is checked like `listen.address` in a config, before anything starts."""
    from probe.config.local import listen_problem

    try:
        endpoint(value, default_port=9910)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    problem = listen_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def _load(path: str | None) -> Config:
    try:
        config = config_module.load(path)
    except ConfigError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        print(f"msgreach: the config is not valid ({len(exc.problems)} problem(s)):\n{lines}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    save_generated_code()  # start-up's dataclasses, for the next process (probe.lean)
    # The modules and the config live as long as the process: out of the cyclic collector's
    # way, so its passes over a round's garbage do not walk them again and again. The
    # collector, off while they were made (probe.__main__), runs from here on.
    gc.collect()
    gc.freeze()
    gc.enable()
    return config


def entry() -> NoReturn:
    """The `msgreach` command (and `python -m probe`, both through `probe.__main__.run`): `main`,
    then its exit status. After a
    `once` round the process ends without the interpreter's teardown, which frees every module
    and the round's records one by one (see `_end_at_once`)."""
    code = main()
    if _once_written:
        _end_at_once(code)
    raise SystemExit(code)


_once_written = False  # set when `once` wrote its output: nothing more runs in the process


def _end_at_once(code: int) -> NoReturn:
    """Every buffered byte written (log handlers, stdout, stderr), then `os._exit` with the same
    status. Should a flush fail (stdout a closed pipe), the interpreter's own exit reports it as
    it always did."""
    try:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command not in ("run", "once"):
        gc.enable()  # their start-up ends here (`run` and `once`: once the config is loaded)
    _setup_logging(args.log_level)
    from probe.redact import LogScrubber

    LogScrubber.install()  # no public address (the volunteer's, reflected by a server) in any log line
    if args.command in ("run", "once"):
        from probe.runner import prepare_process

        prepare_process()
    if args.command == "check-config":
        return _check_config(args.file, args.web_config)
    if args.command == "once":
        return _once(args)
    if args.command == "run":
        from probe.access import Access
        from probe.service import serve

        config = _load(args.config)
        access = None
        if args.web_config is not None:
            access = Access.of_web_config(_load_web_config(args.web_config, config))
        try:
            return asyncio.run(serve(config, listen=args.listen, config_path=args.config, access=access, web_config_path=args.web_config))
        except KeyboardInterrupt:
            return EXIT_OK
        except OSError as exc:  # e.g. the listen address is taken
            print(f"msgreach: cannot serve: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except ValueError as exc:
            print(f"msgreach: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.command == "helper":
        from probe.helper.cli import run_helper

        save_generated_code()  # its start-up's dataclasses kept, the monitor's let go
        return run_helper(args.config, args.listen)
    if args.command == "evidence":
        from probe.evidence import print_changes

        save_generated_code()
        return print_changes(args, _load(args.config) if args.path is None else None)
    return EXIT_USAGE


def _setup_logging(level: str | None) -> None:
    """A volunteer sees where msgreach listens and a line per round without asking; libraries
    (the scheduler announces every job run at INFO) only speak up for warnings, whatever the
    level asked for, except DEBUG, which makes everything talk."""
    libraries = "DEBUG" if level == "DEBUG" else ("ERROR" if level == "ERROR" else "WARNING")
    logging.basicConfig(level=libraries, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("probe").setLevel(level or "INFO")


def _load_web_config(path: str, config: Config) -> WebConfig:
    """The web config for `run`, or exit 2 naming file, line and key."""
    web, problems = _web_config(path, config)
    if web is None or problems:
        lines = "\n".join(f"  {p}" for p in problems)
        print(f"msgreach: the web config is not valid ({len(problems)} problem(s)):\n{lines}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return web


def _web_config(path: str, config: Config) -> tuple[WebConfig | None, list[str]]:
    """The validated web config and its problems; refused beside the config's own `listen.tls` /
    `listen.basic_auth` (two answers to one question: which would protect the listener?)."""
    from probe.config.webconfig import load_web_config

    try:
        web = load_web_config(path)
    except ConfigError as exc:
        return None, [str(p) for p in exc.problems]
    keys = [key for key, value in (("listen.tls", config.listen.tls), ("listen.basic_auth", config.listen.basic_auth)) if value is not None]
    if keys:
        return web, [f"{config.source}: {' and '.join(keys)}: --web.config.file {path} replaces them: keep the listener's protection in one place, the web config"]
    return web, []


def _check_config(path: str, web_config: str | None = None) -> int:
    try:
        config = config_module.load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    save_generated_code()
    if web_config is not None:
        _, web_problems = _web_config(web_config, config)
        for line in web_problems:
            print(line, file=sys.stderr)
        if web_problems:
            return EXIT_USAGE
    targets = sum(len(s.targets) for s in config.services)
    print(f"{path}: ok ({len(config.vantages)} vantage(s), {len(config.services)} service(s), {targets} target(s), {len(config.controls)} control(s))")
    return EXIT_OK


def _once(args: argparse.Namespace) -> int:
    from probe import report
    from probe.runner import run_all

    config = _load(args.config)
    known = {s.name for s in config.services}
    unknown = [s for s in args.services or [] if s not in known]
    if unknown:
        print(f"msgreach: unknown service(s) {', '.join(unknown)}; configured: {', '.join(sorted(known))}", file=sys.stderr)
        return EXIT_USAGE
    progress = report.Progress(sys.stderr, _targets_in_round(config, args.services)) if sys.stderr.isatty() else None
    started_at, started = time.time(), time.monotonic()
    try:
        results = asyncio.run(run_all(config, args.services, progress))
    finally:
        if progress is not None:
            progress.close()
    duration = time.monotonic() - started
    if config.evidence.path is not None:
        from probe.evidence import Archive

        archive = Archive(config.evidence, config.vantages)
        for result in results:
            archive.append(result)
    output_format = args.format or ("table" if sys.stdout.isatty() else "json")
    if output_format == "json":
        report.write_json(results, started_at, duration, sys.stdout)
    else:
        print(report.as_table(results))
    global _once_written
    _once_written = True
    return report.exit_status(results)


def _targets_in_round(config: Config, services: list[str] | None) -> int:
    """Targets a `once` round measures when every vantage is online: its controls and services."""
    chosen = sum(len(s.targets) for s in config.services if services is None or s.name in services)
    return len(config.vantages) * (len(config.controls) + chosen)

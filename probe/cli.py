"""Command line: `run`, `once`, `check-config`, `helper`, `evidence` (see ../shared/CONTRACT.md)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time

from probe import __version__, config as config_module
from probe.addresses import endpoint
from probe.config import Config, ConfigError

EXIT_OK = 0
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one paragraph, exit 2, no traceback
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

    once = commands.add_parser("once", help="one round of every check, then exit")
    once.add_argument("--config", help="config file (default: the embedded default)")
    once.add_argument("--service", action="append", dest="services", metavar="NAME", help="only this service (repeatable)")
    once.add_argument("--format", choices=["table", "json"], default=None, help="table (default on a terminal) or json")

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file")

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
    evidence.add_argument("--format", choices=["table", "json"], default="table")
    evidence.add_argument("--rejudge", action="store_true", help="judge every stored verdict again from its observations; print each difference (exit 1 if any)")
    return parser


def _listen_address(value: str) -> str:
    """`--listen` is checked like `listen.address` in a config, before anything starts."""
    try:
        endpoint(value, default_port=9910)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _load(path: str | None) -> Config:
    try:
        config = config_module.load(path)
    except ConfigError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        print(f"msgreach: the config is not valid ({len(exc.problems)} problem(s)):\n{lines}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    # The modules and the config live as long as the process: out of the cyclic collector's
    # way, so its passes over a round's garbage do not walk them again and again.
    gc.collect()
    gc.freeze()
    return config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.log_level)
    from probe.redact import LogScrubber

    LogScrubber.install()  # no public address (the volunteer's, reflected by a server) in any log line
    if args.command in ("run", "once"):
        from probe.runner import prepare_process

        prepare_process()
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "once":
        return _once(args)
    if args.command == "run":
        from probe.service import serve

        config = _load(args.config)
        try:
            return asyncio.run(serve(config, listen=args.listen, config_path=args.config))
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

        return run_helper(args.config, args.listen)
    if args.command == "evidence":
        from probe.evidence import print_changes

        return print_changes(args, _load(args.config) if args.path is None else None)
    return EXIT_USAGE


def _setup_logging(level: str | None) -> None:
    """A volunteer sees where msgreach listens and a line per round without asking; libraries
    (the scheduler announces every job run at INFO) only speak up for warnings, whatever the
    level asked for, except DEBUG, which makes everything talk."""
    libraries = "DEBUG" if level == "DEBUG" else ("ERROR" if level == "ERROR" else "WARNING")
    logging.basicConfig(level=libraries, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("probe").setLevel(level or "INFO")


def _check_config(path: str) -> int:
    try:
        config = config_module.load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
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
    started_at, started = time.time(), time.monotonic()
    results = asyncio.run(run_all(config, args.services))
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
    return EXIT_OK

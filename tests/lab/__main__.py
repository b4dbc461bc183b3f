"""`python -m tests.lab up|down|status|config|scenario …|once|exec …` (run from the repo root, as root).

    up [--hold]                        build the lab (cleaning a stale one first); --hold waits for
                                       Ctrl-C / SIGTERM and then tears it down
    down                               tear everything down (namespaces, processes, state)
    status                             namespaces, daemons, active scenarios
    config                             path and text of the msgreach lab config
    scenario list                      every scenario: technique, source, expected verdict
    scenario NAME on [TARGET ...] [--option KEY=VALUE ...]
                                       switch a scenario on (targets: whatsapp, whatsapp/web, web.whatsapp.com;
                                       options: a scenario's own settings, e.g. vpn-linger --option seconds=20)
    scenario NAME off | scenario all off
    once [msgreach once args]          run `msgreach once --config LABCFG` in the client namespace
    exec -- CMD ...                    run a command in the client namespace
    table [OBSERVED.jsonl]             the docs/lab.md scenario table (observed column from a
                                       matrix run with MRL_LAB_OBSERVED=OBSERVED.jsonl)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from .lab import Lab, LabError, acquire_lock, cleanup_stale, leftovers
from .plan import NS_CLIENT
from .scenarios import SCENARIO_LIST, load_catalogue
from .teardown import install as install_teardown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description="the msgreach censorship lab")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up")
    up.add_argument("--hold", action="store_true", help="stay in the foreground; tear down on exit")
    sub.add_parser("down")
    sub.add_parser("status")
    sub.add_parser("config")
    scenario = sub.add_parser("scenario")
    scenario.add_argument("name", help="a scenario name, `list`, or `all` (with off)")
    scenario.add_argument("state", nargs="?", choices=["on", "off"])
    scenario.add_argument("targets", nargs="*")
    scenario.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a scenario's own setting")
    once = sub.add_parser("once")
    once.add_argument("rest", nargs=argparse.REMAINDER)
    table = sub.add_parser("table")
    table.add_argument("observed", nargs="?")
    exe = sub.add_parser("exec")
    exe.add_argument("rest", nargs=argparse.REMAINDER)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["once"], ["exec"]):  # everything after the command is passed through
        args = argparse.Namespace(command=argv[0], rest=argv[1:])
    else:
        args = parser.parse_args(argv)

    try:
        if args.command == "up":
            lab = Lab()
            teardown = install_teardown(lab)  # a failed or interrupted `up` leaves nothing behind
            lab.up()
            print(f"lab up; msgreach config: {lab.config_path}")
            print(f"  try: ip netns exec {NS_CLIENT} {' '.join(lab.msgreach_argv())} once --config {lab.config_path} --format table")
            if args.hold:
                print("holding; Ctrl-C or SIGTERM tears the lab down")
                teardown.hold()
            else:
                teardown.disarm()  # the lab stays up until `down`
            return 0
        if args.command == "down":
            lab = Lab()
            lock = acquire_lock(lab.dir, 0)  # refuses while a pytest session / up --hold runs
            try:
                found = cleanup_stale(lab.dir)
            finally:
                os.close(lock)
            print(f"lab down (removed: {json.dumps(found)})")
            return 0
        if args.command == "status":
            lab = Lab()
            print(json.dumps({"up": lab.is_up, "present": leftovers(), "daemons": lab.state.get("pids", {}), "scenarios": lab.active_scenarios}, indent=2))
            return 0
        if args.command == "config":
            lab = Lab()
            if not lab.config_path.is_file():
                raise LabError("no lab config: the lab is not up")
            print(f"# {lab.config_path}")
            print(lab.config_path.read_text(), end="")
            return 0
        if args.command == "scenario":
            load_catalogue()  # every module's scenarios, not only the base ones
            if args.name == "list":
                for s in SCENARIO_LIST:
                    print(f"{s.name:22} -> {s.expected:16} {s.technique}  [{s.source}]")
                return 0
            lab = Lab()
            if args.name == "all" and args.state == "off":
                lab.clear_scenarios()
                print("every scenario off")
                return 0
            if args.state is None:
                parser.error("scenario NAME on|off [TARGET ...]")
            options = dict(item.partition("=")[::2] for item in args.option)
            lab.scenario(args.name, args.state == "on", args.targets or None, options=options or None)
            print(f"{args.name} {args.state}; active: {json.dumps(lab.active_scenarios)}")
            return 0
        if args.command == "table":
            print(scenario_table(args.observed))
            return 0
        if args.command == "once":
            lab = Lab()
            rest = [a for a in args.rest if a != "--"]
            argv = ["ip", "netns", "exec", NS_CLIENT, *lab.msgreach_argv(), "once", "--config", str(lab.config_path), *rest]
            return subprocess.call(argv)
        if args.command == "exec":
            rest = [a for a in args.rest if a != "--"]
            return subprocess.call(["ip", "netns", "exec", NS_CLIENT, *rest])
    except (LabError, ValueError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 2


def scenario_table(observed_path: str | None) -> str:
    """Markdown: scenario, technique, source, expected verdict, observed per service."""
    load_catalogue()  # the protocol and field scenarios too

    observed: dict[str, dict[str, str]] = {}
    if observed_path:
        for line in open(observed_path, encoding="utf-8"):
            row = json.loads(line)
            note = row.get("note") or ""
            note = note if len(note) <= 160 else note[:160] + "…"
            seen = f"`{row['observed']}`" + (f" — touched targets: {note}" if note else "")
            observed.setdefault(row["scenario"].split(" ")[0], {})[row["targets"]] = seen
    lines = [
        "| scenario | technique | real-world source | expected | observed |",
        "|---|---|---|---|---|",
    ]
    for s in SCENARIO_LIST:
        seen = observed.get(s.name, {})
        cell = "<br>".join(f"{k}: {v}" for k, v in sorted(seen.items())) or "—"
        failure = f" (`{s.failure}`)" if s.failure else ""
        failure += f"; {s.evidence}" if s.evidence else ""
        lines.append(f"| `{s.name}` | {s.technique} | {s.source} | `{s.expected}`{failure} | {cell} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

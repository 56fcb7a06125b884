"""The ``meshconform`` command. ``up``/``down``/``sweep`` run the reference mesh and live with it
(:mod:`meshproxy.cli`); what is the harness's (``compare``) is here.

    meshconform up [--scenario FILE] [--state FILE] [--defects JSON]   # foreground until Ctrl-C / SIGTERM
    meshconform down [--state FILE]                                    # stop a mesh started elsewhere
    meshconform sweep [--run-id ID]                                    # kill leftovers of dead runs
    meshconform compare REPORT... [--markdown FILE]                    # reports side by side
    meshconform load --mesh=NAME --users N --run-time 30s [--workers K]  # Locust through a mesh (harness/locust)
    meshconform faults serve [--listen 127.0.0.1:8474] [--owner PID]     # Toxiproxy's API (harness/faults)
    meshconform zipkin serve [--listen 127.0.0.1:9411]                   # a Zipkin v2 collector (harness/observability)

Exit codes: 0 ok, 1 runtime failure, 2 bad input (scenario, defects, state file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from harness.faults.cli import add_faults_command
from harness.locust.cli import add_load_command
from harness.observability.cli import add_zipkin_command
from meshproxy.cli import add_mesh_commands

# piped output (CI logs) gets a width that fits the table instead of rich's 80-column default
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, highlight=False)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshconform", description="Chaos and conformance harness for meshes.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    add_mesh_commands(sub)
    compare = sub.add_parser("compare", help="render several conformance reports side by side (features × meshes)")
    compare.add_argument("reports", nargs="+", type=Path, metavar="REPORT", help="conformance-<mesh>.yaml files")
    compare.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown")
    compare.set_defaults(run=_compare)
    add_load_command(sub)
    add_faults_command(sub)
    add_zipkin_command(sub)
    return parser


def _compare(args: argparse.Namespace) -> int:
    from harness.compare import compare, load_report, render_markdown, render_table

    try:
        comparison = compare([load_report(p) for p in args.reports])
    except (OSError, ValueError, KeyError) as exc:
        errors.print(f"compare: {exc}", markup=False)
        return 2
    console.print(render_table(comparison))
    if args.markdown:
        args.markdown.write_text(render_markdown(comparison))
        console.print(f"markdown: {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

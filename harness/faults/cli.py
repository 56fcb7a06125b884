"""``meshconform faults serve``: the fault service (:mod:`harness.faults.service`) in the foreground.

    meshconform faults serve [--listen 127.0.0.1:8474] [--owner PID]

Prints ``meshconform faults: serving the Toxiproxy API on http://IP:PORT`` once it listens (port 0
picks a free one, shown there), then serves until SIGTERM or Ctrl-C (exit 0), or until the ``--owner``
process dies, so a service started for one run never outlives it. Every proxy it made is stopped on
the way out. Exit 2 for a bad flag, 1 when the address cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

READY_PREFIX = "meshconform faults: serving the Toxiproxy API on "
DEFAULT_LISTEN = "127.0.0.1:8474"  # Toxiproxy's own default port


def add_faults_command(sub: Any) -> None:
    faults = sub.add_parser("faults", help="the fault service: Toxiproxy's HTTP API, with HTTP toxics and leases")
    verbs = faults.add_subparsers(required=True, metavar="VERB")
    serve = verbs.add_parser("serve", help="serve Toxiproxy's API in the foreground until Ctrl-C / SIGTERM",
                             description=__doc__.split("\n\n")[0])
    serve.add_argument("--listen", default=DEFAULT_LISTEN, type=_address, metavar="IP:PORT",
                       help=f"the API's address (default {DEFAULT_LISTEN}; port 0: any free port)")
    serve.add_argument("--owner", type=_pid, metavar="PID",
                       help="exit when this process exits (a run's service never outlives the run)")
    serve.set_defaults(run=_serve)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not IP:PORT")
    return host.strip("[]"), int(port)


def _pid(text: str) -> str:
    from meshruntime.processes import alive, owner_token

    if not text.isdigit() or not alive(int(text)):
        raise argparse.ArgumentTypeError(f"{text!r} is not the pid of a live process")
    return owner_token(int(text))


def _serve(args: argparse.Namespace) -> int:
    import uvloop

    from harness.faults.service import serve

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(args.listen, owner=args.owner, stop=stop,
                    ready=lambda url: print(READY_PREFIX + url, flush=True))

    try:
        uvloop.run(main())
    except OSError as exc:
        print(f"meshconform faults: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0

"""``meshconform zipkin serve``: the harness's Zipkin v2 collector in the foreground, so a real Envoy
(or any Zipkin v2 JSON reporter) can be pointed at it and its spans read back through Zipkin's API.

    meshconform zipkin serve [--listen 127.0.0.1:9411]

Prints ``meshconform zipkin: collecting on http://IP:PORT/api/v2/spans`` once it listens (port 0 picks
a free one), then serves until SIGTERM or Ctrl-C (exit 0). Exit 2 for a bad flag (a non-loopback
address included), 1 when the address cannot be bound.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

READY_PREFIX = "meshconform zipkin: collecting on "
DEFAULT_LISTEN = "127.0.0.1:9411"  # Zipkin's own default port


def add_zipkin_command(sub: Any) -> None:
    zipkin = sub.add_parser("zipkin", help="a Zipkin v2 collector (POST /api/v2/spans and the read API)")
    verbs = zipkin.add_subparsers(required=True, metavar="VERB")
    serve = verbs.add_parser("serve", help="collect spans in the foreground until Ctrl-C / SIGTERM",
                             description=__doc__.split("\n\n")[0])
    serve.add_argument("--listen", default=DEFAULT_LISTEN, type=_listen, metavar="IP:PORT",
                       help=f"loopback address to listen on (default {DEFAULT_LISTEN}; port 0: any free port)")
    serve.set_defaults(run=_serve)


def _listen(text: str) -> str:
    from harness.observability.zipkin_served import parse_listen

    try:
        parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _serve(args: argparse.Namespace) -> int:
    from harness.observability.zipkin_served import ZipkinCollector

    try:
        collector = ZipkinCollector.start(args.listen)
    except RuntimeError as e:
        print(f"meshconform zipkin: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"{READY_PREFIX}{collector.url}/api/v2/spans", flush=True)
    try:
        stop.wait()  # until a signal: the collector serves from its own thread
    finally:
        collector.stop()
    return 0

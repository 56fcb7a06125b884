"""``python -m meshproxy.controlplane --listen IP:PORT --state-dir DIR --trust-domain TD
--admin-token-file FILE [--cert-ttl SECONDS]``: serve until SIGTERM or SIGINT, then exit 0."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import uvloop

from meshproxy.controlplane.server import Settings, start_controlplane

log = logging.getLogger("meshproxy.controlplane")


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected IP:PORT")
    return host.strip("[]"), int(port)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m meshproxy.controlplane", description=__doc__)
    parser.add_argument("--listen", type=_listen, required=True, help="IP:PORT to serve HTTPS on")
    parser.add_argument("--state-dir", type=Path, required=True, help="CA key, bundle, durable scenario")
    parser.add_argument("--trust-domain", required=True)
    parser.add_argument("--admin-token-file", type=Path, required=True)
    parser.add_argument("--cert-ttl", type=float, default=3600.0,
                        help="workload certificate lifetime in seconds when no scenario sets cert_ttl")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    admin_token = args.admin_token_file.read_text().strip()
    if not admin_token:
        raise SystemExit(f"{args.admin_token_file} is empty: the admin token is required")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = args.listen
    running = await start_controlplane(Settings(host, port, args.state_dir, args.trust_domain, admin_token,
                                                args.cert_ttl))
    log.info("controlplane ready on %s", running.url)
    await stop.wait()
    log.info("controlplane stopping")
    await running.stop()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s controlplane %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args))
    except OSError as exc:
        log.error("cannot serve on %s:%d: %s", *args.listen, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m meshproxy.sidecar --bootstrap FILE``: one sidecar on one uvloop event loop.

SIGTERM / SIGINT stop listening, deregister (best effort) and exit 0 within 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

import uvloop

from meshproxy.sidecar.bootstrap import load_bootstrap
from meshproxy.sidecar.server import Sidecar


async def _run(bootstrap_path: str) -> int:
    sidecar = Sidecar(load_bootstrap(bootstrap_path))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sidecar.start()
    except Exception:
        logging.getLogger("meshproxy.sidecar").exception("sidecar failed to start")
        await sidecar.stop()
        return 1
    # Everything allocated so far lives as long as the process: keep the cyclic GC from re-scanning it
    # on every collection (gc.freeze), so collections during traffic only walk per-request garbage.
    gc.collect()
    gc.freeze()
    await stop.wait()
    try:
        await asyncio.wait_for(sidecar.stop(), 1.8)
    except asyncio.TimeoutError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshproxy.sidecar")
    parser.add_argument("--bootstrap", required=True, help="bootstrap JSON file")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return uvloop.run(_run(args.bootstrap))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""HEALTHCHECK of the reference mesh's images: exit 0 when GET URL answers 200, else 1.

    meshconform-health http://self:15000/ready
    meshconform-health https://self:15010/healthz --bundle /state/bundle.pem

``self`` is this container's address on its network (its hostname in /etc/hosts, which Docker writes):
where a mesh process listens in a container. Standard library only, so a probe every few seconds per
container costs a few milliseconds of CPU (importing the mesh's packages would cost a few hundred).
"""
import socket
import ssl
import sys
import urllib.request


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    url, bundle = argv[0], None
    if len(argv) == 3 and argv[1] == "--bundle":
        bundle = argv[2]
    if "//self:" in url:
        url = url.replace("//self:", f"//{socket.gethostbyname(socket.gethostname())}:", 1)
    ctx = None
    if url.startswith("https:"):
        ctx = ssl.create_default_context(cafile=bundle) if bundle else ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as response:
            return 0 if response.status == 200 else 1
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The flags of ``meshconform load``, checked: one :class:`LoadOptions`, or a :class:`LoadUsageError`
whose one-line message names the flag.

Every check happens before anything starts, so a typo never costs a mesh start-up. Locust's own rules
are followed where it has them (``--run-time`` is Locust's timespan: ``90``, ``30s``, ``1m30s``,
``1h``), but parsed here: importing Locust's helpers would import ``locust``, which monkey-patches the
CLI's interpreter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

LOCUSTFILES_DIR = Path(__file__).parent / "locustfiles"
# the locustfiles shipped in the package, by the short name --locustfile accepts
SHIPPED = {"canary": "mesh_canary.py", "routes": "mesh_routes.py", "retries": "mesh_retries.py"}
RECORDING = LOCUSTFILES_DIR / "meshconform_recording.py"  # loaded first in every run: our listener
DEFAULT_MESH = "reference"
DEFAULT_MASTER_PORT = 5557  # Locust's
_TIMESPAN = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class LoadUsageError(ValueError):
    """A bad flag; the message is one line and names it."""


@dataclass(frozen=True)
class LoadOptions:
    mesh: str
    scenario: Path | None
    state: Path | None
    locustfiles: tuple[Path, ...]  # the user's choice, shipped ones resolved to their paths
    users: int
    spawn_rate: float
    run_time_s: int
    workers: int  # 0: one Locust process, no master/worker split
    local_workers: int  # of those, how many this command starts (the rest join from other hosts)
    master_host: str | None  # the master listens here and workers connect here; None: pick a loopback one
    master_port: int
    worker_only: bool  # --worker: start workers for a master elsewhere, nothing else
    rate_per_user: float
    out: Path

    @property
    def shipped(self) -> set[str]:
        """Short names of the shipped locustfiles in this run."""
        return shipped_names(self.locustfiles)


def shipped_names(locustfiles: Iterable[Path]) -> set[str]:
    """Short names of the shipped locustfiles among these resolved paths."""
    names = {v: k for k, v in SHIPPED.items()}
    return {names[p.name] for p in locustfiles if p.parent == LOCUSTFILES_DIR.resolve() and p.name in names}


def parse_run_time(text: str) -> int:
    """Seconds from a Locust timespan (``"45"``, ``"30s"``, ``"2m"``, ``"1h30m"``); ValueError if bad."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = _TIMESPAN.match(text)
    if not text or not match:
        raise ValueError(f"{text!r} is not a time span (e.g. 30s, 2m, 1h30m)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def resolve_locustfiles(text: str, flag: str = "--locustfile") -> tuple[Path, ...]:
    """Shipped names or paths, comma-separated (as Locust's ``-f``); each must be a readable file.
    The error names ``flag``, the option that gave ``text``."""
    paths = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise LoadUsageError(f"{flag}: empty name in {text!r}")
        path = LOCUSTFILES_DIR / SHIPPED[item] if item in SHIPPED else Path(item)
        try:
            with path.open("rb"):
                pass
        except IsADirectoryError:
            raise LoadUsageError(f"{flag}: {item} is a directory, not a locustfile") from None
        except OSError as exc:
            known = ", ".join(SHIPPED)
            raise LoadUsageError(f"{flag}: cannot read {item} ({exc.strerror}); shipped: {known}") from None
        paths.append(path.resolve())
    return tuple(paths)


def validate(args: Any, known_meshes: Iterable[str]) -> LoadOptions:
    """Check the parsed flags (argparse leaves them as strings) and return them typed."""
    worker_only = bool(args.worker)
    workers = _int("--workers", args.workers, minimum=0 if not worker_only else 1,
                   default=1 if worker_only else 0)
    local = _int("--local-workers", args.local_workers, minimum=0, default=workers)
    if local > workers:
        raise LoadUsageError(f"--local-workers: {local} is more than --workers {workers}")
    host, port = _master(args.master_host)
    if worker_only and host is None:
        raise LoadUsageError("--worker: needs --master-host (where the master listens)")
    if local < workers and host is None:
        raise LoadUsageError("--local-workers: workers on other hosts need --master-host, an address they reach")
    known = sorted(known_meshes)
    mesh = args.mesh or DEFAULT_MESH
    if not worker_only and mesh not in known:
        raise LoadUsageError(f"--mesh: no mesh adapter named {mesh!r} (known: {', '.join(known) or 'none'})")
    if args.state and args.scenario:
        raise LoadUsageError("--scenario: a mesh given by --state runs its own scenario; give one or the other")
    if args.state and mesh != DEFAULT_MESH:
        raise LoadUsageError(f"--state: names a reference mesh started by `meshconform up`, not --mesh={mesh}")
    for flag, path in (("--scenario", args.scenario), ("--state", args.state)):
        if path is not None and not Path(path).is_file():
            raise LoadUsageError(f"{flag}: cannot read {path} (no such file)")
    return LoadOptions(
        mesh=mesh, scenario=Path(args.scenario) if args.scenario else None,
        state=Path(args.state) if args.state else None,
        locustfiles=resolve_locustfiles(args.locustfile),
        users=_int("--users", args.users, minimum=1, default=10),
        spawn_rate=_number("--spawn-rate", args.spawn_rate, default=10.0, positive=True),
        run_time_s=_run_time(args.run_time),
        workers=workers, local_workers=local, master_host=host, master_port=port, worker_only=worker_only,
        rate_per_user=_number("--rate-per-user", args.rate_per_user, default=10.0, positive=False),
        out=Path(args.out) if args.out else _default_out(mesh, worker_only))


def _int(flag: str, text: str | None, *, minimum: int, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise LoadUsageError(f"{flag}: {text!r} is not a whole number") from None
    if value < minimum:
        raise LoadUsageError(f"{flag}: must be at least {minimum}, got {value}")
    return value


def _number(flag: str, text: str | None, *, default: float, positive: bool) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise LoadUsageError(f"{flag}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0 or (positive and value == 0):
        raise LoadUsageError(f"{flag}: must be {'above' if positive else 'at least'} 0, got {text}")
    return value


def _run_time(text: str | None) -> int:
    try:
        seconds = parse_run_time(text if text is not None else "30s")
    except ValueError as exc:
        raise LoadUsageError(f"--run-time: {exc}") from None
    if seconds <= 0:
        raise LoadUsageError(f"--run-time: must be at least 1s, got {text!r}")
    return seconds


def _master(text: str | None) -> tuple[str | None, int]:
    if not text:
        return None, DEFAULT_MASTER_PORT
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return text, DEFAULT_MASTER_PORT
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise LoadUsageError(f"--master-host: {text!r} is not HOST or HOST:PORT")
    return host, int(port_text)


def _default_out(mesh: str, worker_only: bool) -> Path:
    return Path("reports") / ("load-workers" if worker_only else "load-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", mesh))

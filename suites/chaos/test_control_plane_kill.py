"""The control plane killed (SPEC §4 Chaos): the data plane keeps serving with its last configuration,
with zero errors; a configuration change made while it is down takes effect once it returns;
certificate renewal resumes; and a sidecar started while it is down reports not ready and serves nothing
unverified until it returns. All in one outage of 20 s, one check of about 25-29 s (measured).

Destination ``steady`` has versions v1 and v2, its route sending everything to v1 (scenario.yaml). An
open-loop load runs while the control plane is killed (SIGKILL, ``ProcessControl.kill("controlplane")``)
for ``DOWN_S`` seconds and while it is started again (the lease's heal: ``restart``, which returns once
every sidecar found it again and acked its configuration — the adapter's observation).

The change. Right after the kill the route is moved to v2 with ``apply``, from a thread of its own. The
harness's ``apply`` contract is "returns once in effect", so with the control plane away it cannot
return before the control plane is back: the reference adapter queues the change (LocalMesh.apply waits
until the control plane answers again, stores the change, then waits for every sidecar's ack, within
30 s); an adapter whose apply raises while the control plane is down fails the check. Requests sent
before the control plane is back must all reach v1 (nothing can change the data plane meanwhile); those
sent after both the return and the apply's return must all reach v2, as must ``AFTER_REQUESTS``
sequential ones after the load. The original scenario is applied again when the check ends.

The renewal. The scenario's ``cert_ttl`` (50 s) makes a renewal fall inside the outage while no
certificate expires during it (scenario.yaml says why for any phase). The certificates that the caller
and the destination present (``MeshCertificates.workload_certificate``, a TLS handshake with each
inbound) are read at the end of the outage; after the return each must change within
``RENEW_BOUND_S``. The premise is checked from those certificates themselves: each must be past half its
lifetime when the control plane is back, and not expired.

The sidecar started while it is down. Right after the kill the sidecar of ``STARTED`` (a workload no
other part of the check uses) is killed and started again (``ProcessControl.restart`` on a thread of
its own: it returns only once the sidecar is ready, so not before the control plane is back). Until the
control plane is started again, every ``PROBE_EVERY_S`` the check asks its readiness
(``ProxyReadiness.proxy_ready``) and sends a request through it (bounded by ``PROBE_TIMEOUT_S``): every
probe must find it not ready, no request may be answered by an echo, and the destination's echo
journals must show no arrival of those requests before the return (a sidecar without its certificate
and configuration serves nothing unverified: refused, answered by the mesh, or left unanswered). After
the return it must be ready within ``STARTED_BOUND_S`` and serve a request. The reference runtime
cannot mint a join token while the control plane is down (tokens live in its memory), so the restarted
sidecar joins with the SVID its previous life left in its work directory, as a SPIRE agent re-attests
with its stored SVID; until it has joined, its admin ``/ready`` answers 503 and its data listeners accept
nothing.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

from harness.adapters.base import MeshCertificates, ProcessControl, ProxyReadiness
from harness.checks import conformance
from harness.faults.process import killed
from harness.features import Feature, Level, Profile
from meshruntime.processes import wait_until
from meshscenario import Backend
from suites.conftest import require

from ._decisions import Probe, Renewal, judge_control_plane_kill, judge_renewal, judge_started_while_down
from ._support import CLIENT, OpenLoad, arrival_times, journal_mark, send, status_counts, timeline, warm_up
from .conftest import SCENARIO

SERVICE = "steady"
OLD, NEW = "steady-v1-0", "steady-v2-0"
WATCHED = (CLIENT, OLD)  # whose certificates must be renewed after the outage
RATE = 20.0  # requests/s, open loop: 400 requests while the control plane is down
PRE_S = 0.5
DOWN_S = 20.0  # several times any sidecar's retry interval for its config watch (the reference: 5 s at most)
AFTER_S = 0.5  # load after the control plane is back and the change in effect (10 requests)
AFTER_REQUESTS = 10
RETURN_BUDGET_S = 30.0  # the longest the load waits for the control plane's return
APPLY_BUDGET_S = 30.0  # the longest the change made while it was down may take after the return
# The reference retries a failed renewal every min(5 s, lifetime / 20) = 4 s (lifetime 80 s: cert_ttl 50 s
# and not_before 30 s early); its control plane answers before restart() returns, so a renewal is due
# within 4 s of the return; 8 s leaves a busy 2-vCPU machine 4 s for the signing and the handshake.
RENEW_BOUND_S = 8.0
RENEW_POLL_S = 0.25
STARTED = "restart-v1-0"  # its sidecar is killed and started again while the control plane is down
PROBE_TIMEOUT_S = 1.0  # a request through it while it has not joined (it must not be served)
PROBE_EVERY_S = 0.5
# ready after the return: the reference retries joining every 1 s at most, then signs, registers, fetches
# its first configuration and acks; restart() returns once it did (and every other sidecar acked)
STARTED_BOUND_S = 10.0


def _moved():
    routes = [r.model_copy(update={"backends": [Backend(version="v2", weight=1)]}) if r.name == "steady" else r
              for r in SCENARIO.routes]
    return SCENARIO.model_copy(update={"routes": routes})


@conformance(
    short_name="MeshChaosControlPlaneKill",
    description=f"Open-loop load of {RATE:.0f} requests/s to a route sending everything to v1; the control plane is "
                f"killed (SIGKILL) for {DOWN_S:.0f} s and started again; right after the kill the route is moved to "
                f"v2 (apply, which the adapter queues until the control plane is back). Pass: zero failed requests "
                f"before, during and after the outage; every request sent before the control plane is back answered "
                f"by v1 (the last configuration), every one sent after its return and the apply's return (within "
                f"{APPLY_BUDGET_S:.0f} s) by v2, as are {AFTER_REQUESTS} sequential requests after the load; with "
                f"cert_ttl {SCENARIO.cert_ttl:.0f} s (a renewal falls inside the outage, no certificate expires in "
                f"it), the certificates caller and destination present each change within {RENEW_BOUND_S:.0f} s of "
                f"the control plane's return; a sidecar started while the control plane is down is never ready and "
                f"serves no request (none answered by, none arriving at an echo) until it is back, then is ready "
                f"within {STARTED_BOUND_S:.0f} s and serves. Deterministic; about 28 s (the sidecars' config "
                f"watches retry every 5 s at most, so the return takes 1-6 s).",
    features=[Feature.CHAOS_CONTROL_PLANE_KILL], profile=Profile.CHAOS, level=Level.CORE)
def test_control_plane_kill(mesh, chaos_mesh, evidence):
    problems = measure_control_plane_kill(mesh, chaos_mesh, evidence)
    assert not problems, "control plane outage not survived: " + "; ".join(problems)


class _Background:
    """``call()`` on a daemon thread (an apply or a restart that returns only once the control plane is
    back): when it returned, or why it raised."""

    def __init__(self, call, name: str):
        self.began_ns = time.monotonic_ns()
        self.done_ns: int | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), name=name, daemon=True)
        self._thread.start()

    def _run(self, call) -> None:
        try:
            call()
        except Exception as exc:  # the finding: the mesh could not take it while the control plane was down
            self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            self.done_ns = time.monotonic_ns()

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout=max(0.0, timeout))
        return not self._thread.is_alive()


def _presented(ca, workload: str):
    from cryptography import x509

    return x509.load_pem_x509_certificate(ca.workload_certificate(workload))


def _serial(cert) -> str:
    return format(cert.serial_number, "x")


def measure_control_plane_kill(mesh, chaos_mesh, evidence) -> list[str]:
    """The check's run and decision: its problems (none: it passed)."""
    require(mesh, ProcessControl, "kill the control plane")
    readiness = require(mesh, ProxyReadiness, "see a sidecar started while the control plane is down not ready")
    ca = require(mesh, MeshCertificates, "read the certificates the workloads present")
    began = time.monotonic()
    key = uuid.uuid4().hex
    problem = warm_up(mesh, SERVICE, "/", key, [OLD])
    if problem:
        return [problem]
    problems: list[str] = []
    down_certs: dict = {}
    load = OpenLoad(mesh, SERVICE, "/", key, rate=RATE,
                    max_s=PRE_S + DOWN_S + RETURN_BUDGET_S + APPLY_BUDGET_S + RENEW_BOUND_S + AFTER_S)
    change: _Background | None = None
    starting: _Background | None = None
    probes: list[Probe] = []
    probe_key = uuid.uuid4().hex
    marks = {e: journal_mark(chaos_mesh, e) for e in (OLD, NEW)}
    renewed: dict[str, float | None] = {w: None for w in WATCHED}
    handshake_errors: dict[str, str] = {}
    try:
        with load:
            load.wait_answered_after(load.start_ns, int(RATE * PRE_S), timeout=PRE_S + 10.0,
                                     what="the load's answers before the kill")
            with killed(mesh, "controlplane") as fault:  # started again when the block ends (or below)
                kill_ns = fault.at_ns
                change = _Background(lambda: mesh.apply(_moved()), "apply while down")  # made while it is down
                mesh.kill(STARTED)  # this sidecar gone for good, then started while the control plane is down
                starting = _Background(lambda: mesh.restart(STARTED), "start while down")
                down_end_ns = kill_ns + int(DOWN_S * 1e9)
                while time.monotonic_ns() < down_end_ns:  # bounded: the outage's planned end
                    at = time.monotonic_ns()
                    ready = readiness.proxy_ready(STARTED)
                    timeout_s = max(0.2, min(PROBE_TIMEOUT_S, (down_end_ns - at) / 1e9))  # ends with the outage
                    probes.append(Probe(at, ready, send(mesh, SERVICE, "/", probe_key, timeout_s, caller=STARTED)))
                    threading.Event().wait(max(0.0, min(PROBE_EVERY_S - (time.monotonic_ns() - at) / 1e9,
                                                        (down_end_ns - time.monotonic_ns()) / 1e9)))  # pacing
                load.wait_answered_after(kill_ns + int(DOWN_S * 1e9), 1, timeout=DOWN_S + 10.0,
                                         what="the load's answers while the control plane is down")
                down_certs = {w: _presented(ca, w) for w in WATCHED}  # still presented: nothing can renew them
                back_begin_ns = time.monotonic_ns()
                try:
                    fault.heal()
                except Exception as exc:  # the return not observed: a finding, judged with the rest
                    problems.append(f"the control plane's return was not observed ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0]}): not every sidecar found it again and acked")
            back_ns = fault.healed_ns
            back_wall = dt.datetime.now(dt.timezone.utc)

            def renewal_seen() -> bool:
                for w in WATCHED:
                    if renewed[w] is None:
                        try:
                            if _serial(_presented(ca, w)) != _serial(down_certs[w]):
                                renewed[w] = (time.monotonic_ns() - back_ns) / 1e9
                        except Exception as exc:  # e.g. it presents an expired certificate
                            handshake_errors[w] = f"{type(exc).__name__}: {exc}"
                return all(v is not None for v in renewed.values())

            try:
                wait_until(renewal_seen, timeout=RENEW_BOUND_S, interval=RENEW_POLL_S,
                           what="the watched workloads to present renewed certificates")
            except TimeoutError:
                pass  # judged below: which workload did not renew
            change.wait(APPLY_BUDGET_S - (time.monotonic_ns() - back_ns) / 1e9)
            starting.wait(STARTED_BOUND_S - (time.monotonic_ns() - back_ns) / 1e9)
            started_s = (starting.done_ns - back_ns) / 1e9 \
                if starting.done_ns is not None and starting.error is None else None
            started_after = send(mesh, SERVICE, "/", probe_key, caller=STARTED) if started_s is not None else None
            settled_ns = max(back_ns, change.done_ns or back_ns)
            load.wait_answered_after(settled_ns + int(AFTER_S * 1e9), 1, timeout=AFTER_S + 10.0,
                                     what="the load's answers after the control plane is back")
            load.stop()
            shots = load.join()
        after = [send(mesh, SERVICE, "/", key) for _ in range(AFTER_REQUESTS)]
    except BaseException:
        if change is not None and change.wait(APPLY_BUDGET_S) and change.error is None:
            mesh.apply(SCENARIO)  # the check's own scenario back, then the error
        raise
    if change.error is None and change.done_ns is not None:  # else the mesh never took it: nothing to undo
        try:
            mesh.apply(SCENARIO)
        except Exception as exc:
            problems.append(f"the original scenario could not be applied again after the check: {exc}")
    changed_ns = change.done_ns if change.error is None and change.done_ns is not None else None
    if change.error:
        problems.append(f"the change applied while the control plane was down failed: {change.error}")
    elif change.done_ns is None:
        problems.append(f"the change applied while the control plane was down was not in effect "
                        f"{APPLY_BUDGET_S:.0f} s after the control plane was back")
    if starting.error:
        problems.append(f"starting the sidecar of {STARTED} while the control plane was down failed: "
                        f"{starting.error}")
    arrivals = [t for e in (OLD, NEW) for t in arrival_times(chaos_mesh, e, marks[e], probe_key)]
    evidence.measure("started_while_down_probes", len(probes))
    evidence.measure("started_while_down_ready_probes", sum(1 for p in probes if p.ready))
    if started_s is not None:
        evidence.measure("started_while_down_ready_after_return_seconds", round(started_s, 3), unit="s")
    problems += judge_started_while_down(probes, arrivals, workload=STARTED, back_begin_ns=back_begin_ns,
                                         started_s=started_s, bound_s=STARTED_BOUND_S, after=started_after)
    down = [s for s in shots if kill_ns <= s.sent_ns < back_begin_ns]
    evidence.samples = len(shots) + len(after)
    evidence["statuses"] = status_counts(shots)
    evidence.measure("requests_while_down", len(down))
    evidence.measure("failed_requests", sum(1 for s in shots if not s.ok))
    evidence.measure("down_seconds", round((back_begin_ns - kill_ns) / 1e9, 3), unit="s")
    evidence.measure("return_seconds", round((back_ns - back_begin_ns) / 1e9, 3), unit="s")
    if changed_ns is not None:  # the apply's return, from when the restart began (both wait for every ack)
        evidence.measure("change_in_effect_after_restart_began_seconds", round((changed_ns - back_begin_ns) / 1e9, 3),
                         unit="s")
    for w, seconds in renewed.items():
        if seconds is not None:
            evidence.measure(f"renewed_after_return_seconds.{w}", round(seconds, 3), unit="s")
    evidence["certificates_while_down"] = {w: {"serial": _serial(c), "not_before": c.not_valid_before_utc.isoformat(),
                                               "not_after": c.not_valid_after_utc.isoformat()}
                                           for w, c in down_certs.items()}
    evidence["answers_after_change"] = {str(w): sum(1 for s in after if s.endpoint == w) for w in {s.endpoint for s in after}}
    timeline(evidence, shots, kill_ns, "control plane killed at 0 s: answers", {
        "kill": kill_ns, "restart": back_begin_ns, "back": back_ns, "change in effect": changed_ns})
    renewals = [Renewal(w, _serial(c),
                        down_half_life_s=((c.not_valid_before_utc + (c.not_valid_after_utc - c.not_valid_before_utc) / 2)
                                          - back_wall).total_seconds(),
                        down_expiry_s=(c.not_valid_after_utc - back_wall).total_seconds(),
                        renewed_s=renewed[w], error=handshake_errors.get(w) if renewed[w] is None else None)
                for w, c in down_certs.items()]
    evidence.measure("check_seconds", round(time.monotonic() - began, 2), unit="s")
    return problems + judge_control_plane_kill(shots, after, kill_ns=kill_ns, back_begin_ns=back_begin_ns,
                                               back_ns=back_ns, changed_ns=changed_ns, old=OLD, new=NEW) \
        + judge_renewal(renewals, bound_s=RENEW_BOUND_S, ttl_s=SCENARIO.cert_ttl)

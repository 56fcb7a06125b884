"""MESH-HARDENING: bad input at a workload's edge (SPEC §4 Hardening, §6 "Bad input a proxy must survive").

Each check sends hand-written request bytes on raw connections to the client's outbound listener and,
over TLS with a mesh-issued client certificate of ``client``, to the STRICT backend's inbound listener,
then judges by the echo's journal: nothing malformed arrives at the app, at most one answer per
request, and the listener keeps serving (a good request afterwards is answered 200 and arrives). See
suites/hardening/_support.py. Deterministic: fixed byte strings, one connection each, no statistics.
"""

from __future__ import annotations

from typing import Callable

from harness.checks import conformance
from harness.features import Feature, Level, Profile

from ._support import (CLOSE_WAIT_S, Case, arrivals_after_good, case_path, exchange, judge_case, judge_good,
                       listeners, new_key, request, still_serves)

DETERMINISTIC = (f"Deterministic: fixed byte strings, one connection per case, read until the proxy closes or "
                 f"{CLOSE_WAIT_S:.1f} s; no statistics.")
JUDGED = ("to the client's outbound listener and, over TLS with a mesh-issued client certificate, the backend's "
          "inbound listener; judged by the echo's journal")


def run(mesh, deployment, scenario, evidence, check: str, cases: Callable[[str, str], list[Case]], *,
        refuse: Callable[[Case], bool] = lambda case: True, must_close: bool = False,
        allowed: tuple[int, ...] = ()) -> list[str]:
    """Send every case to both listeners, then a good request to each; the problems (none: passed)."""
    key = new_key()
    problems: list[str] = []
    seen: dict[str, str] = {}
    for listener in listeners(mesh, deployment, scenario):
        sent = [(case, exchange(listener, case.data)) for case in cases(key, listener.name)]
        good_path, good = still_serves(listener, key, check)
        arrivals, arrived = arrivals_after_good(deployment, key, good_path)
        for case, got in sent:
            seen[f"{listener.name}/{case.name}"] = got.describe()
            problems += judge_case(listener.name, case, got, arrivals, refuse=refuse(case), must_close=must_close,
                                   allowed=allowed)
        seen[f"{listener.name}/good-afterwards"] = good.describe()
        problems += judge_good(listener.name, good, arrived)
    evidence["answers"] = seen
    evidence.samples = len(seen)
    return problems


# -- request smuggling ----------------------------------------------------------------------------------

def smuggling_cases(key: str, listener: str) -> list[Case]:
    def path(case: str) -> str:
        return case_path("smuggling", case, listener)

    def hidden(case: str) -> tuple[str, bytes]:
        p = case_path("smuggled", case, listener)
        return p, request("GET", p, key)

    cases = []
    # CL.TE: a Content-Length reader takes the whole as one body, a chunked reader ends the body at 0 and
    # reads the hidden GET as a request of its own
    inner_path, inner = hidden("cl-te")
    body = b"0\r\n\r\n" + inner
    cases.append(Case("Content-Length with Transfer-Encoding: chunked (CL.TE)",
                      request("POST", path("cl-te"), key, f"Content-Length: {len(body)}",
                              "Transfer-Encoding: chunked", body=body), path("cl-te"), inner_path))
    # TE.CL: a chunked reader takes one chunk holding the GET, a Content-Length reader stops after 4 bytes
    inner_path, inner = hidden("te-cl")
    size_line = b"%x\r\n" % len(inner)
    chunk = size_line + inner + b"\r\n0\r\n\r\n"
    cases.append(Case("Transfer-Encoding: chunked with a short Content-Length (TE.CL)",
                      request("POST", path("te-cl"), key, "Transfer-Encoding: chunked",
                              f"Content-Length: {len(size_line)}", body=chunk),
                      path("te-cl"), inner_path))
    # obfuscated TE: a proxy that does not see "chunked" frames by Content-Length, one that does by chunks
    for name, te in [("xchunked", "Transfer-Encoding: xchunked"),
                     ("chunked-then-identity", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"),
                     ("tab-before-value", "Transfer-Encoding:\tchunked, identity")]:
        inner_path, inner = hidden(f"te-{name}")
        body = b"0\r\n\r\n" + inner
        cases.append(Case(f"obfuscated Transfer-Encoding ({name}) with Content-Length",
                          request("POST", path(f"te-{name}"), key, f"Content-Length: {len(body)}", te, body=body),
                          path(f"te-{name}"), inner_path))
    # conflicting Content-Length: the first says 0 (the GET is a request of its own), the second covers it
    inner_path, inner = hidden("two-cl")
    cases.append(Case("two different Content-Length lines",
                      request("POST", path("two-cl"), key, "Content-Length: 0", f"Content-Length: {len(inner)}",
                              body=inner), path("two-cl"), inner_path))
    inner_path, inner = hidden("cl-list")
    cases.append(Case("a Content-Length list of different values",
                      request("POST", path("cl-list"), key, f"Content-Length: 0, {len(inner)}", body=inner),
                      path("cl-list"), inner_path))
    return cases


def _is_cl_te(case: Case) -> bool:
    return "(CL.TE)" in case.name or "(TE.CL)" in case.name


@conformance(
    short_name="MeshHardeningSmuggling",
    description="Request-smuggling shapes (Content-Length with Transfer-Encoding both ways round, three "
                "obfuscated Transfer-Encodings, two conflicting Content-Lengths), each hiding a second GET in its "
                f"body, sent {JUDGED}: the hidden GET never arrives as a request of its own, no request arrives "
                "with both framings, each gets at most one answer; the obfuscated and conflicting ones are refused "
                "with a 4xx (or 501 for an unknown coding, RFC 9112 §6.1), nothing forwarded, and the connection closed (RFC 9112 §6.3); CL+TE may be refused so "
                "or processed by its chunked framing alone, once, and the connection then closed (RFC 9112 §6.1); "
                "a good request afterwards is answered 200. " + DETERMINISTIC,
    features=[Feature.HARDENING_SMUGGLING], profile=Profile.HARDENING, level=Level.CORE)
def test_smuggling(mesh, hardening_mesh, scenario, evidence):
    problems = run(mesh, hardening_mesh, scenario, evidence, "smuggling", smuggling_cases,
                   refuse=lambda case: not _is_cl_te(case), must_close=True)
    problems += cl_te_closes(mesh, hardening_mesh, scenario, evidence)
    assert not problems, "request smuggling: " + "; ".join(problems)


def cl_te_closes(mesh, deployment, scenario, evidence) -> list[str]:
    """CL+TE processed by chunks alone must close the connection after the answer (RFC 9112 §6.1)."""
    problems = []
    for name, got in evidence["answers"].items():
        if ("(CL.TE)" in name or "(TE.CL)" in name) and "still open" in got and not got.startswith("no answer"):
            problems.append(f"{name.split('/')[0]} listener, {name.split('/', 1)[1]}: the connection stayed open "
                            f"after the answer ({got}); a proxy that reads CL+TE by its chunks must close it")
    return problems


# -- duplicate and missing Host ----------------------------------------------------------------------------

def host_cases(key: str, listener: str) -> list[Case]:
    def path(case: str) -> str:
        return case_path("host", case, listener)

    return [
        Case("two identical Host lines", request("GET", path("same"), key, "Host: backend"), path("same")),
        Case("two different Host lines", request("GET", path("different"), key, "Host: elsewhere.example"),
             path("different")),
        Case("an HTTP/1.1 request without Host", request("GET", path("none"), key, host=None), path("none")),
    ]


@conformance(
    short_name="MeshHardeningDuplicateHost",
    description=f"Requests with two Host lines (the same value, and two values) and an HTTP/1.1 request without "
                f"Host, sent {JUDGED}: each is refused with one 400 (RFC 9112 §3.2), "
                f"nothing arrives at the app, and a good request afterwards is answered 200. " + DETERMINISTIC,
    features=[Feature.HARDENING_DUPLICATE_HOST], profile=Profile.HARDENING, level=Level.CORE)
def test_duplicate_host(mesh, hardening_mesh, scenario, evidence):
    problems = run(mesh, hardening_mesh, scenario, evidence, "host", host_cases, allowed=(400,))
    assert not problems, "Host header: " + "; ".join(problems)


# -- chunked trailers ----------------------------------------------------------------------------------------

TRAILER_ONLY = "x-hardening-trailer"
FIELD = "x-hardening-field"
KEY = "x-echo-key"


def trailer_cases(key: str, listener: str) -> list[Case]:
    p = case_path("trailers", "chunked", listener)
    body = (b"5\r\nhello\r\n0\r\n" + f"{TRAILER_ONLY}: evil\r\n{FIELD}: from-trailer\r\n".encode()
            + f"{KEY}: other\r\n\r\n".encode())
    return [Case("a chunked body with trailer fields",
                 request("POST", p, key, f"{FIELD}: from-header", "Transfer-Encoding: chunked",
                         f"Trailer: {TRAILER_ONLY}, {FIELD}", "Connection: close", body=body), p)]


@conformance(
    short_name="MeshHardeningTrailers",
    description=f"A chunked request whose trailer section has a field the headers lack ({TRAILER_ONLY}), one "
                f"that repeats a header ({FIELD}) and the echo key with another value, sent {JUDGED}: it arrives "
                f"at most once, with no trailer field among its headers ({TRAILER_ONLY} absent, {FIELD} exactly "
                f"the header's value, the key unchanged), it gets one answer, and a good request afterwards is "
                f"answered 200. " + DETERMINISTIC,
    features=[Feature.HARDENING_TRAILERS], profile=Profile.HARDENING, level=Level.CORE)
def test_trailers(mesh, hardening_mesh, scenario, evidence):
    problems = run(mesh, hardening_mesh, scenario, evidence, "trailers", trailer_cases, refuse=lambda case: False)
    arrivals = hardening_mesh.echo("backend-v1-0").journal_sync()
    for a in arrivals:
        if not a["path"].startswith("/hardening/trailers/chunked/"):
            continue
        listener = a["path"].rsplit("/", 1)[1]
        h = a["headers"]
        if h.get(FIELD) is None or h.get(FIELD) != "from-header" or TRAILER_ONLY in h or "," in (h.get(KEY) or ""):
            problems.append(f"{listener} listener: a trailer arrived at the app as a header ({TRAILER_ONLY}: "
                            f"{h.get(TRAILER_ONLY)!r}, {FIELD}: {h.get(FIELD)!r}, {KEY}: {h.get(KEY)!r})")
    evidence["trailer_arrivals"] = sum(1 for a in arrivals if a["path"].startswith("/hardening/trailers/chunked/"))
    assert not problems, "chunked trailers: " + "; ".join(problems)


# -- CONNECT -----------------------------------------------------------------------------------------------

def connect_cases(key: str, listener: str) -> list[Case]:
    tunneled = case_path("tunneled", "connect", listener)
    p = "backend:80"
    return [Case("CONNECT backend:80 followed by a request for the tunnel",
                 request("CONNECT", p, key) + request("GET", tunneled, key), p, tunneled)]


@conformance(
    short_name="MeshHardeningConnect",
    description=f"CONNECT backend:80 (Host: backend) followed at once by a GET meant for the tunnel, sent {JUDGED}: "
                f"it is refused with one 4xx (or 501) answer and the bytes after it are never read as a request of their "
                f"own (no second answer; the tunnelled GET never arrives), no CONNECT arrives at the app, and a good "
                f"request afterwards is answered 200. " + DETERMINISTIC,
    features=[Feature.HARDENING_CONNECT], profile=Profile.HARDENING, level=Level.CORE)
def test_connect(mesh, hardening_mesh, scenario, evidence):
    problems = run(mesh, hardening_mesh, scenario, evidence, "connect", connect_cases)
    arrivals = hardening_mesh.echo("backend-v1-0").journal_sync()
    for a in arrivals:
        if a["method"] == "CONNECT":
            problems.append(f"a CONNECT arrived at the app ({a['path']!r})")
    assert not problems, "CONNECT: " + "; ".join(problems)


# -- the listener keeps serving ----------------------------------------------------------------------------

def garbage_cases(key: str, listener: str) -> list[Case]:
    def path(case: str) -> str:
        return case_path("garbage", case, listener)

    client_hello = bytes.fromhex("16030100a5010000a10303") + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00" + bytes(64)
    return [
        Case("a line of garbage", b"\x00\xffGARBAGE \x01\x02 not http\r\n\r\n", path("garbage")),
        Case("a TLS ClientHello on plain HTTP", client_hello, path("client-hello")),
        Case("a 70 kB header", request("GET", path("big-header"), key, "x-big: " + "a" * 70_000), path("big-header"),
             may_arrive=True),
        Case("300 headers", request("GET", path("many-headers"), key, *(f"x-h{i}: v" for i in range(300))),
             path("many-headers"), may_arrive=True),
        Case("an invalid chunk size", request("POST", path("bad-chunk"), key, "Transfer-Encoding: chunked",
                                               body=b"zz\r\nhello\r\n0\r\n\r\n"), path("bad-chunk")),
        Case("a chunk size overflowing 64 bits", request("POST", path("huge-chunk"), key, "Transfer-Encoding: chunked",
                                                          body=b"fffffffffffffffff1\r\nhello\r\n0\r\n\r\n"),
             path("huge-chunk")),
        Case("a header name with a space", request("GET", path("space-name"), key, "Bad Name: x"), path("space-name")),
        Case("an empty header name", request("GET", path("empty-name"), key, ": x"), path("empty-name")),
        Case("a NUL in a header value", request("GET", path("nul"), key, "x-a: a\x00b"), path("nul")),
        Case("an unknown HTTP version", request("GET", path("version"), key, version="HTTP/7.1"), path("version"),
             may_arrive=True),
    ]


@conformance(
    short_name="MeshHardeningKeepsServing",
    description=f"A volley of bad input (a garbage line, a TLS ClientHello on plain HTTP, a 70 kB header, 300 "
                f"headers, an invalid and an overflowing chunk size, header names with a space or empty, a NUL in a "
                f"value, an unknown HTTP version), one connection each, sent {JUDGED}: each gets at most one answer; the "
                f"malformed ones get a 4xx (or 501/505) or none, never a 2xx or another 5xx of the proxy's own, and "
                f"nothing of them arrives at the app; the three that are only at a limit (the big header, the 300 "
                f"headers, HTTP/7.1) may instead be forwarded once, normalised; a good request afterwards is "
                f"answered 200 and arrives. " + DETERMINISTIC,
    features=[Feature.HARDENING_KEEPS_SERVING], profile=Profile.HARDENING, level=Level.CORE)
def test_keeps_serving(mesh, hardening_mesh, scenario, evidence):
    problems = run(mesh, hardening_mesh, scenario, evidence, "garbage", garbage_cases)
    # garbage may get no answer at all (there is no request to answer): only a wrong answer is a problem
    problems = [p for p in problems if "no answer (want a clear refusal" not in p]
    assert not problems, "bad input: " + "; ".join(problems)

// The real toxiproxy-node-client against `meshconform faults serve`, one scenario per run:
//
//   node scenarios.js SCENARIO '{"api": "http://IP:PORT", "listenHost": "IP", "upstream": "IP:PORT"}'
//
// Each scenario drives the client, measures the effect on the wire (net sockets through the proxy to
// the echo upstream the test started) and prints one JSON object on stdout; tests/clients/
// test_clients_node.py asserts on it. A client error is printed as {"error": ..., "name": ...}, exit 1.
"use strict";

const net = require("node:net");
const crypto = require("node:crypto");
const { Toxiproxy, ToxiproxyError } = require("toxiproxy-node-client");

const SOCKET_TIMEOUT_MS = 10000;

function splitHostPort(hostport) {
  const i = hostport.lastIndexOf(":");
  return { host: hostport.slice(0, i), port: Number(hostport.slice(i + 1)) };
}

function connect(hostport) {
  const { host, port } = splitHostPort(hostport);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    sock.setNoDelay(true);
    sock.setTimeout(SOCKET_TIMEOUT_MS);
    sock.once("connect", () => { sock.setTimeout(0); resolve(sock); });
    sock.once("error", reject);
    sock.once("timeout", () => { sock.destroy(); reject(new Error("connect timed out")); });
  });
}

// The error code of a connection attempt, or null when it opened.
async function connectError(hostport) {
  try {
    const sock = await connect(hostport);
    sock.destroy();
    return null;
  } catch (e) {
    return e.code || e.message;
  }
}

// Read until `n` bytes arrived, the stream ended, or `timeoutMs` passed.
function readFrom(sock, n, timeoutMs) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const chunks = [];
    let size = 0;
    let reads = 0;
    let done = false;
    const finish = (ending) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.removeListener("data", onData);
      sock.removeListener("end", onEnd);
      sock.removeListener("error", onError);
      sock.removeListener("close", onClose);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      resolve({ data: Buffer.concat(chunks), ending, ms, reads });
    };
    const onData = (chunk) => {
      chunks.push(chunk);
      size += chunk.length;
      reads += 1;
      if (n !== null && size >= n) finish("complete");
    };
    const onEnd = () => finish("eof");
    const onError = (e) => finish(e.code === "ECONNRESET" ? "reset" : `error:${e.code || e.message}`);
    const onClose = () => finish("eof");
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    sock.on("data", onData);
    sock.once("end", onEnd);
    sock.once("error", onError);
    sock.once("close", onClose);
  });
}

// The smallest of `trips` round trips of 4 bytes on one connection, after a warm-up trip (ms).
async function roundTripMs(hostport, trips = 3) {
  const sock = await connect(hostport);
  try {
    let best = Infinity;
    for (let i = 0; i <= trips; i++) {
      const start = process.hrtime.bigint();
      sock.write("ping");
      const got = await readFrom(sock, 4, SOCKET_TIMEOUT_MS);
      if (got.data.toString() !== "ping") throw new Error(`round trip answered ${got.ending} ${got.data}`);
      if (i > 0) best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
    }
    return best;
  } finally {
    sock.destroy();
  }
}

// Send `size` random bytes through the echo and read them all back: {ms, ok}.
async function echoDownloadMs(hostport, size) {
  const payload = crypto.randomBytes(size);
  const sock = await connect(hostport);
  try {
    const start = process.hrtime.bigint();
    sock.write(payload);
    const got = await readFrom(sock, size, 30000);
    return { ms: Number(process.hrtime.bigint() - start) / 1e6, ok: got.data.equals(payload) };
  } finally {
    sock.destroy();
  }
}

// Write `payload`, then read until the stream ends: {bytes, ending, ms, reads, prefix}.
async function sendAndReadToEnd(hostport, payload, timeoutMs) {
  const sock = await connect(hostport);
  try {
    sock.write(payload);
    const got = await readFrom(sock, null, timeoutMs);
    const prefix = got.data.length > 0 && payload.subarray(0, got.data.length).equals(got.data);
    return { bytes: got.data.length, ending: got.ending, ms: got.ms, reads: got.reads, prefix };
  } finally {
    sock.destroy();
  }
}

async function newProxy(toxiproxy, args, name = "echo") {
  return toxiproxy.createProxy({ name, listen: `${args.listenHost}:0`, upstream: args.upstream });
}

async function clientError(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return { name: e.name, message: e.message, isToxiproxyError: e instanceof ToxiproxyError };
  }
}

const scenarios = {
  async version(toxiproxy) {
    return { version: await toxiproxy.getVersion() };
  },

  async lifecycle(toxiproxy, args) {
    const proxy = await newProxy(toxiproxy, args);
    const created = proxy.toJson();
    const listed = Object.keys(await toxiproxy.getAll());
    const fetched = (await toxiproxy.get("echo")).toJson();
    const rttMs = await roundTripMs(proxy.listen);
    const disabled = (await proxy.update({ ...proxy.toJson(), enabled: false })).toJson();
    const whileDisabled = await connectError(proxy.listen);
    const enabled = (await proxy.update({ ...proxy.toJson(), enabled: true })).toJson();
    const rttAfterMs = await roundTripMs(enabled.listen);
    await proxy.remove();
    const afterRemove = Object.keys(await toxiproxy.getAll());
    const afterRemoveConnect = await connectError(proxy.listen);
    return { created, listed, fetched, rttMs, disabled, whileDisabled, enabled, rttAfterMs, afterRemove,
             afterRemoveConnect };
  },

  async latency(toxiproxy, args) {
    const proxy = await newProxy(toxiproxy, args);
    const baselineMs = await roundTripMs(proxy.listen);
    const toxic = await proxy.addToxic({ type: "latency", attributes: { latency: 200, jitter: 0 } });
    const added = toxic.toJson();
    const withToxicMs = await roundTripMs(proxy.listen);
    const fetched = (await proxy.getToxic(toxic.name)).toJson();
    const updated = (await toxic.update({ attributes: { latency: 400 } })).toJson();
    const updatedMs = await roundTripMs(proxy.listen);
    await toxic.remove();
    const removedMs = await roundTripMs(proxy.listen);
    const afterRemove = await clientError(proxy.getToxic(toxic.name));
    return { baselineMs, added, withToxicMs, fetched, updated, updatedMs, removedMs, afterRemove };
  },

  async bandwidth(toxiproxy, args) {
    const proxy = await newProxy(toxiproxy, args);
    const unlimited = await echoDownloadMs(proxy.listen, 200000);
    const toxic = await proxy.addToxic({ type: "bandwidth", name: "slow_down", attributes: { rate: 400 } });
    const limited = await echoDownloadMs(proxy.listen, 200000);
    return { toxic: toxic.toJson(), unlimited, limited };
  },

  async timeout(toxiproxy, args) {
    const proxy = await newProxy(toxiproxy, args);
    const toxic = await proxy.addToxic({ type: "timeout", attributes: { timeout: 500 } });
    const result = await sendAndReadToEnd(proxy.listen, Buffer.from("ping"), 5000);
    return { toxic: toxic.toJson(), ...result };
  },

  async reset_peer(toxiproxy, args) {
    // Toxiproxy resets `timeout` ms after the first chunk on the toxic's stream; an idle connection stays
    const proxy = await newProxy(toxiproxy, args);
    const toxic = await proxy.addToxic({ type: "reset_peer", attributes: { timeout: 0 } });
    let connectError = null;
    let sock;
    try {
      sock = await connect(proxy.listen);
    } catch (e) {
      return { toxic: toxic.toJson(), connectError: e.code || e.message };
    }
    const idle = await readFrom(sock, null, 300);
    if (idle.ending !== "timeout") {
      sock.destroy();
      return { toxic: toxic.toJson(), connectError, idleEnding: idle.ending, idleBytes: idle.data.length };
    }
    sock.write("ping");
    const got = await readFrom(sock, null, 5000);
    sock.destroy();
    return { toxic: toxic.toJson(), connectError, idleEnding: idle.ending, idleBytes: idle.data.length,
             ending: got.ending, bytes: got.data.length, ms: got.ms };
  },

  async slicer(toxiproxy, args) {
    const proxy = await newProxy(toxiproxy, args);
    const toxic = await proxy.addToxic({
      type: "slicer", attributes: { average_size: 100, size_variation: 0, delay: 20000 } });
    const payload = crypto.randomBytes(2000);
    const sock = await connect(proxy.listen);
    sock.write(payload);
    const got = await readFrom(sock, payload.length, 10000);
    sock.destroy();
    return { toxic: toxic.toJson(), bytes: got.data.length, same: got.data.equals(payload), reads: got.reads,
             ms: got.ms, ending: got.ending };
  },

  async limit_data(toxiproxy, args) {
    const proxy = await newProxy(toxiproxy, args);
    const toxic = await proxy.addToxic({ type: "limit_data", attributes: { bytes: 100 } });
    const result = await sendAndReadToEnd(proxy.listen, crypto.randomBytes(1000), 5000);
    return { toxic: toxic.toJson(), ...result };
  },

  async populate(toxiproxy, args) {
    const proxies = await toxiproxy.populate([
      { name: "one", listen: `${args.listenHost}:0`, upstream: args.upstream },
      { name: "two", listen: `${args.listenHost}:0`, upstream: args.upstream },
    ]);
    const names = Object.keys(proxies).sort();
    const rtts = [];
    for (const name of names) rtts.push(await roundTripMs(proxies[name].listen));
    const listed = Object.keys(await toxiproxy.getAll()).sort();
    return { names, listens: names.map((n) => proxies[n].listen), rttsMs: rtts, listed };
  },

  async reset(toxiproxy, args) {
    const proxy = await newProxy(toxiproxy, args);
    await proxy.addToxic({ type: "latency", attributes: { latency: 200 } });
    await proxy.update({ ...proxy.toJson(), enabled: false });
    const whileDisabled = await connectError(proxy.listen);
    await toxiproxy.reset();
    const after = (await toxiproxy.get("echo")).toJson();
    const rttMs = await roundTripMs(after.listen);
    const toxicAfter = await clientError(proxy.getToxic("latency_downstream"));
    return { whileDisabled, after, rttMs, toxicAfter };
  },

  async errors(toxiproxy, args) {
    const proxy = await newProxy(toxiproxy, args);
    return {
      duplicateProxy: await clientError(newProxy(toxiproxy, args)),
      unknownProxy: await clientError(toxiproxy.get("no_such_proxy")),
      unknownToxicType: await clientError(proxy.addToxic({ type: "no_such_toxic", attributes: {} })),
      unknownToxic: await clientError(proxy.getToxic("no_such_toxic")),
      missingUpstream: await clientError(toxiproxy.createProxy({ name: "bad", listen: `${args.listenHost}:0` })),
    };
  },
};

async function main() {
  const [name, rawArgs] = process.argv.slice(2);
  const scenario = scenarios[name];
  if (!scenario) {
    console.error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(", ")}`);
    process.exit(2);
  }
  const args = JSON.parse(rawArgs || "{}");
  const toxiproxy = new Toxiproxy(args.api);
  try {
    console.log(JSON.stringify(await scenario(toxiproxy, args)));
  } catch (e) {
    console.log(JSON.stringify({ error: e.message, name: e.name, stack: e.stack }));
    process.exit(1);
  }
}

main();

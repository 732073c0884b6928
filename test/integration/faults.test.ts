import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { promisify } from "node:util";
import type { ConsumeMessage } from "amqplib";
import { describe, expect, it } from "vitest";
import { CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { PointsClient, servePoints } from "../../generated/points/index.js";
import { DIRECT_REPLY_TO, RpcError, connect, type LogFields } from "../../src/index.js";
import { calculatorHandlers } from "../../examples/services/calculator.js";
import {
  AMQP_URL,
  credentialsOf,
  deleteAfter,
  killConnection,
  onTeardown,
  openConnection,
  recordingLogger,
  redacted,
  sleep,
  uniqueName,
  unreachableUrl,
  until,
} from "../helpers/broker.js";
import { startServerProcess } from "../helpers/processes.js";

const codeOf = (o: PromiseSettledResult<unknown>) => (o.status === "fulfilled" ? "ok" : (o.reason as RpcError).code);

describe("connection faults", () => {
  it("fails non-idempotent calls in flight with connection_lost, then serves new calls after reconnecting", async () => {
    const serverConn = await openConnection();
    const queue = deleteAfter(uniqueName("points"));
    const server = serverConn.server();
    onTeardown(() => server.close());
    // The first three calls stay in flight until the test ends, however long rabbitmqctl takes to kill the connection.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    onTeardown(() => release());
    let started = 0;
    await servePoints(server, { addPoint: async ({ x, y }) => { if (x !== 7) { started++; await gate; } return { count: 1, centroid: { x, y } }; } }, { queue });
    const name = uniqueName("client-conn");
    const conn = await openConnection(name);
    const events: string[] = [];
    for (const e of ["disconnected", "reconnecting", "connected"]) conn.on(e, () => events.push(e));
    const client = await conn.client({ queues: { Points: queue } });
    onTeardown(() => client.close());
    const points = new PointsClient(client);
    const settled = Promise.allSettled([1, 2, 3].map((x) => points.addPoint({ x, y: 0 }, { timeoutMs: 10_000 })));
    await until(() => started === 3, "the three calls in their handlers"); // in flight: sent, not answered
    expect(await killConnection(name)).toBe(1);
    expect((await settled).map(codeOf)).toEqual(["connection_lost", "connection_lost", "connection_lost"]);
    expect(client.pendingCount).toBe(0);
    // A call made while reconnecting waits for the connection, within its deadline.
    await expect(points.addPoint({ x: 7, y: 8 }, { timeoutMs: 10_000 })).resolves.toEqual({ count: 1, centroid: { x: 7, y: 8 } });
    expect(events).toEqual(expect.arrayContaining(["disconnected", "reconnecting", "connected"]));
  });

  it("retries an idempotent call after connection_lost within its deadline", async () => {
    const serverConn = await openConnection();
    const queue = deleteAfter(uniqueName("calc"));
    const server = serverConn.server();
    onTeardown(() => server.close());
    let runs = 0;
    // The first run never answers while the test runs (however long rabbitmqctl takes to kill the connection):
    // the caller's answer can only come from the retry.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    onTeardown(() => release());
    await serveCalculator(server, { ...calculatorHandlers, add: async ({ a, b }) => { if (++runs === 1) await gate; return { sum: a + b }; } }, { queue });
    const name = uniqueName("client-conn");
    const conn = await openConnection(name);
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const call = new CalculatorClient(client).add({ a: 20, b: 22 }, { timeoutMs: 10_000 });
    await until(() => runs === 1, "the call in its handler"); // in flight: the first attempt is running
    expect(await killConnection(name)).toBe(1);
    await expect(call).resolves.toEqual({ sum: 42 });
    expect(runs).toBe(2); // the contract says add is idempotent: running it twice is allowed
  });

  it("a retried idempotent call still times out at its first deadline, ahead of a later call with the same timeout", async () => {
    // A queue nobody consumes: requests wait there and no reply ever comes.
    const queue = deleteAfter(uniqueName("calc"));
    const setup = await openConnection();
    const ch = await setup.channel();
    await ch.assertQueue(queue, { durable: true });
    await ch.close();
    const name = uniqueName("client-conn");
    const conn = await openConnection(name);
    const client = await conn.client({ queues: { Calculator: queue }, waitForServer: true });
    onTeardown(() => client.close());
    const calc = new CalculatorClient(client);
    const timeoutMs = 6_000;
    const order: string[] = [];
    const record = (label: string) => (err: RpcError) => void order.push(`${label}:${err.code}`);
    const first = calc.add({ a: 1, b: 1 }, { timeoutMs }).catch(record("first"));
    // The moment the connection drops, before first's retry (which waits a backoff) is registered:
    // a call with the same timeout, due later than first.
    let later: Promise<unknown> | undefined;
    conn.once("disconnected", () => (later = calc.add({ a: 2, b: 2 }, { timeoutMs }).catch(record("later"))));
    const probe = await setup.channel();
    onTeardown(() => probe.close().catch(() => {}));
    await until(async () => (await probe.checkQueue(queue)).messageCount === 1, "the first request in the queue"); // sent before the drop
    expect(await killConnection(name)).toBe(1);
    await first;
    expect(order).toEqual(["first:timeout"]); // later is still pending when first times out
    await later;
    expect(order).toEqual(["first:timeout", "later:timeout"]);
  }, 30_000);

  it("a server whose connection is killed reconnects, re-declares its queue and resumes", async () => {
    const name = uniqueName("server-conn");
    const serverConn = await openConnection(name);
    const queue = deleteAfter(uniqueName("calc"));
    const server = serverConn.server();
    onTeardown(() => server.close());
    await serveCalculator(server, calculatorHandlers, { queue });
    const conn = await openConnection();
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const calc = new CalculatorClient(client);
    await expect(calc.add({ a: 1, b: 1 })).resolves.toEqual({ sum: 2 });
    expect(await killConnection(name)).toBe(1);
    await expect(calc.add({ a: 2, b: 2 }, { timeoutMs: 10_000 })).resolves.toEqual({ sum: 4 });
  });

  it("a server whose queue is deleted re-declares it and consumes again, loudly", async () => {
    const logger = recordingLogger();
    const serverConn = await openConnection(uniqueName("server-conn"), logger);
    const queue = deleteAfter(uniqueName("calc"));
    const server = serverConn.server();
    onTeardown(() => server.close());
    await serveCalculator(server, calculatorHandlers, { queue });
    const conn = await openConnection();
    const ch = await conn.channel();
    onTeardown(() => ch.close());
    await ch.deleteQueue(queue);
    await until(() => logger.lines.some((l) => l.includes("consuming")), "the server to consume again");
    expect(logger.lines.join("\n")).toContain("cancelled the consumer");
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    await expect(new CalculatorClient(client).add({ a: 3, b: 4 }, { timeoutMs: 5000 })).resolves.toEqual({ sum: 7 });
  });

  it("a reply published while its channel closes (the server closes it when the broker cancels its consumer) goes out on the next channel", async () => {
    const logger = recordingLogger();
    let release: (() => void) | undefined;
    // The server logs the cancel and closes its channel in the same turn: a handler finishing on that line replies during the close.
    const onCancel = { ...logger, error: (fields: LogFields, message: string) => (logger.error(fields, message), message.includes("cancelled the consumer") && release?.()) };
    const serverConn = await openConnection(uniqueName("server-conn"), onCancel);
    const queue = deleteAfter(uniqueName("calc"));
    const server = serverConn.server();
    onTeardown(() => server.close());
    const add = ({ a, b }: { a: number; b: number }) => new Promise<{ sum: number }>((resolve) => (release = () => resolve({ sum: a + b })));
    await serveCalculator(server, { ...calculatorHandlers, add }, { queue });
    const conn = await openConnection();
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const call = new CalculatorClient(client).add({ a: 3, b: 4 }, { timeoutMs: 5000 });
    await until(() => release !== undefined, "the handler to run");
    const ch = await conn.channel();
    onTeardown(() => ch.close());
    await ch.deleteQueue(queue); // the request goes with the queue: only the handler's reply can answer the caller
    await expect(call).resolves.toEqual({ sum: 7 });
    expect(logger.lines.join("\n")).toContain("could not reply on a closing channel (Channel closing)");
  });
});

describe("several broker addresses", () => {
  // Deliberately wrong addresses: the broker's host, ports where nothing listens (refused at once).
  const dead = unreachableUrl(1, "s3cret-pw");
  const live = AMQP_URL;

  it("skips an address that refuses and connects to the next; url names the one in use", async () => {
    const conn = await connect([dead, live], { name: uniqueName("conn"), logger: recordingLogger() });
    onTeardown(() => conn.close());
    expect(conn.url).toBe(redacted(live));
    const queue = deleteAfter(uniqueName("calc"));
    const server = conn.server();
    onTeardown(() => server.close());
    await serveCalculator(server, calculatorHandlers, { queue });
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    await expect(new CalculatorClient(client).add({ a: 1, b: 2 })).resolves.toEqual({ sum: 3 });
  });

  it("names every address and its failure when none accepts, without passwords", async () => {
    const other = unreachableUrl(2, "other-pw");
    const err = await connect([dead, other], { connectTimeoutMs: 2000 }).then(
      () => { throw new Error("expected the connection to fail"); },
      (e: RpcError) => e,
    );
    expect(err.code).toBe("connection_lost");
    expect(err.message).toBe(
      `cannot reach RabbitMQ at ${redacted(dead)} (ECONNREFUSED), ${redacted(other)} (ECONNREFUSED): start one with \`rabbitmq-server -detached\` (or set AMQP_URL)`,
    );
    expect(err.message).not.toMatch(/s3cret-pw|other-pw/);
  });

  it("refuses an empty list", async () => {
    await expect(connect([])).rejects.toThrow("warren: connect() was given an empty list of broker addresses");
  });

  it("after a loss, tries the address after the lost one first, and goes on to the next within one attempt", async () => {
    // A listener that counts connection attempts and hangs up on each: a node that is down.
    let attempts = 0;
    const down = net.createServer((socket) => {
      attempts++;
      socket.destroy();
    });
    // A node of our own in this process, so on this machine's loopback whatever AMQP_URL names.
    await new Promise<void>((resolve) => down.listen(0, "127.0.0.1", resolve));
    onTeardown(() => new Promise((resolve) => down.close(resolve)));
    const downUrl = `amqp://guest:guest@127.0.0.1:${(down.address() as net.AddressInfo).port}`;
    const logger = recordingLogger();
    const name = uniqueName("conn");
    const conn = await connect([live, downUrl], { name, logger });
    onTeardown(() => conn.close());
    expect(attempts).toBe(0); // the first connection goes to the first address
    const reconnected = new Promise((r) => conn.once("connected", r));
    expect(await killConnection(name)).toBe(1);
    await reconnected;
    expect(attempts).toBe(1); // the reconnection started with the address after `live`...
    expect(conn.url).toBe(redacted(live)); // ...and landed on `live` in the same attempt
    expect(logger.lines.filter((l) => l.startsWith("warren: reconnected"))).toEqual([`warren: reconnected to ${redacted(live)} after 1 attempt(s)`]);
  });
});

describe("at-least-once delivery", () => {
  it("a server SIGKILLed mid-handler: the request is redelivered to the other server and the caller gets its reply", async () => {
    const queue = deleteAfter(uniqueName("shared"));
    const slow = await startServerProcess(queue, 1, 5000);
    const conn = await openConnection();
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const call = new CalculatorClient(client).add({ a: 40, b: 2 }, { timeoutMs: 20_000 });
    await until(() => slow.output.includes("handling 40"), "the slow server to take the call");
    const fast = await startServerProcess(queue, 1, 0);
    slow.child.kill("SIGKILL");
    await expect(call).resolves.toEqual({ sum: 42 });
    expect(await fast.stop()).toBe(1);
    expect(fast.output).toContain("served 1 redelivered 1");
  }, 60_000);
});

describe("poison messages", () => {
  it("600 malformed requests interleaved with valid calls: right codes, no crash, no requeue loop, queue empty", async () => {
    const logger = recordingLogger();
    const serverConn = await openConnection(uniqueName("server-conn"), logger);
    const queue = deleteAfter(uniqueName("poison"));
    const server = serverConn.server({ maxMessageBytes: 4096 });
    onTeardown(() => server.close());
    await serveCalculator(server, calculatorHandlers, { queue });

    const conn = await openConnection();
    const ch = await conn.channel();
    onTeardown(() => ch.close());
    const replies = new Map<string, string>();
    await ch.consume(DIRECT_REPLY_TO, (msg: ConsumeMessage | null) => {
      if (msg?.properties.correlationId) replies.set(msg.properties.correlationId, JSON.parse(msg.content.toString()).code ?? "ok");
    }, { noAck: true });
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const calc = new CalculatorClient(client);

    const json = "application/json";
    const valid = Buffer.from('{"a":1,"b":2}');
    type Case = { body: Buffer; props: Record<string, unknown>; expect: string | null };
    const kinds: ((i: number) => Case)[] = [
      () => ({ body: randomBytes(64), props: { type: "add", contentType: json }, expect: "bad_message" }),
      () => ({ body: Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), props: { type: "add", contentType: json }, expect: "bad_message" }),
      () => ({ body: Buffer.from('{"a":"1","b":[]}'), props: { type: "add", contentType: json }, expect: "invalid_request" }),
      () => ({ body: Buffer.from("[1,2,3]"), props: { type: "divide", contentType: json }, expect: "invalid_request" }),
      () => ({ body: Buffer.alloc(8192, 0x20), props: { type: "add", contentType: json }, expect: "bad_message" }),
      () => ({ body: valid, props: { type: "add", contentType: "text/plain" }, expect: "bad_message" }),
      () => ({ body: valid, props: { contentType: json }, expect: "unknown_method" }),
      (i) => ({ body: valid, props: { type: `nope_${i}`, contentType: json }, expect: "unknown_method" }),
      () => ({ body: valid, props: { type: "add", contentType: json, headers: { "x-warren-deadline": Date.now() - 1 } }, expect: null }),
      () => ({ body: valid, props: { type: "add", contentType: json, headers: { "x-warren-deadline": "tomorrow" } }, expect: "bad_message" }),
      () => ({ body: valid, props: { type: "add", contentType: json, headers: { "x-warren-deadline": { nested: true } } }, expect: "bad_message" }),
      () => ({ body: Buffer.from('{"__proto__":{"x":1},"a":1,"b":2}'), props: { type: "add", contentType: json }, expect: "ok" }),
    ];
    const expected = new Map<string, string | null>();
    const validCalls: Promise<unknown>[] = [];
    for (let i = 0; i < 600; i++) {
      const c = kinds[i % kinds.length]!(i);
      const id = `poison-${i}`;
      expected.set(id, c.expect);
      ch.publish("", queue, c.body, { replyTo: DIRECT_REPLY_TO, correlationId: id, ...c.props });
      if (i % 20 === 0) validCalls.push(calc.add({ a: i, b: 1 }).then((r) => expect(r).toEqual({ sum: i + 1 })));
    }
    // No reply_to, no correlation_id, a reply_to nobody listens on: acked, never looped.
    ch.publish("", queue, valid, { type: "add", contentType: json });
    ch.publish("", queue, valid, { type: "add", contentType: json, replyTo: DIRECT_REPLY_TO });
    ch.publish("", queue, valid, { type: "add", contentType: json, replyTo: uniqueName("nobody"), correlationId: "x" });
    await Promise.all(validCalls);
    const answered = [...expected.values()].filter((e) => e !== null).length;
    await until(() => replies.size >= answered, `${answered} replies`);
    await sleep(200); // room for replies that should not come
    for (const [id, code] of expected) expect({ id, code: replies.get(id) ?? null }).toEqual({ id, code });
    expect(replies.size).toBe(answered);
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);
    await expect(calc.add({ a: 1, b: 1 })).resolves.toEqual({ sum: 2 });
  }, 60_000);
});

describe("broker faults under load", () => {
  it("close_all_connections while 1,000 calls are under way: each succeeds or fails clearly within its deadline, then calls succeed", async () => {
    const serverConn = await openConnection();
    const queue = deleteAfter(uniqueName("load"));
    const server = serverConn.server({ prefetch: 64 });
    onTeardown(() => server.close());
    let handled = 0;
    await servePoints(server, { addPoint: async ({ x, y }) => { await sleep(2); handled++; return { count: 1, centroid: { x, y } }; } }, { queue });
    const conn = await openConnection();
    const client = await conn.client({ queues: { Points: queue } });
    onTeardown(() => client.close());
    const points = new PointsClient(client);
    const timeoutMs = 8000;
    // Closed loop: 1,000 workers, each making its next call as soon as the previous one settles, so that
    // ~1,000 calls are under way whenever the connections close (a fixed batch of 1,000 is all answered in
    // well under the second rabbitmqctl takes to start). They stop once the client sees the loss.
    // Each outcome: "ok" with the right answer, an RpcError's code, or what else it was (which fails below);
    // `late`: how long after its own deadline the call settled.
    let issuing = true;
    conn.once("disconnected", () => (issuing = false));
    const outcomes: { code: string; late: number }[] = [];
    const workers = Array.from({ length: 1000 }, async (_, w) => {
      for (let n = 0; issuing; n++) {
        const x = w * 1_000_000 + n;
        const deadline = Date.now() + timeoutMs;
        outcomes.push(
          await points.addPoint({ x, y: 0 }, { timeoutMs }).then(
            (r) => ({ code: r.centroid.x === x ? "ok" : `wrong answer ${JSON.stringify(r)}`, late: Date.now() - deadline }),
            (err: unknown) => ({ code: err instanceof RpcError ? err.code : `not an RpcError: ${String(err)}`, late: Date.now() - deadline }),
          ),
        );
      }
    });
    try {
      await until(() => handled > 0, "the first calls to be handled");
      // Async: a blocked event loop would delay the clients' timers and skew the deadline check.
      await promisify(execFile)("rabbitmqctl", ["close_all_connections", "warren fault test"]);
      await until(() => !issuing, "the client to see its connection close");
    } finally {
      issuing = false;
    }
    await Promise.all(workers);
    const tally: Record<string, number> = {};
    for (const o of outcomes) tally[o.code] = (tally[o.code] ?? 0) + 1;
    expect(Object.keys(tally).filter((code) => !["ok", "connection_lost", "timeout", "no_server"].includes(code))).toEqual([]);
    // The fault hit calls under way (else this test would check nothing): addPoint is not idempotent, so those fail.
    expect(tally.connection_lost ?? 0, JSON.stringify(tally)).toBeGreaterThan(0);
    expect(Math.max(...outcomes.map((o) => o.late))).toBeLessThan(1000); // no call outlived its deadline (+1 s slack)
    expect(client.pendingCount).toBe(0);
    await expect(points.addPoint({ x: 1, y: 2 }, { timeoutMs: 15_000 })).resolves.toEqual({ count: 1, centroid: { x: 1, y: 2 } });
  }, 60_000);
});

describe("security basics", () => {
  it("never puts credentials in connection errors", async () => {
    const dead = unreachableUrl(1, "s3cret-pw"); // the broker's host, a port where nothing listens
    const err = await connect(dead, { connectTimeoutMs: 2000 }).then(
      () => { throw new Error("expected the connection to fail"); },
      (e: RpcError) => e,
    );
    expect(err.code).toBe("connection_lost");
    expect(err.message).toContain(redacted(dead));
    expect(err.message).not.toContain("s3cret-pw");
    expect(err.message).toContain("rabbitmq-server -detached");
  });

  it("never puts credentials in reconnection logs", async () => {
    const { user, password } = credentialsOf(AMQP_URL);
    expect(password, "AMQP_URL needs a password for this test to look for").not.toBe("");
    const logger = recordingLogger();
    const name = uniqueName("conn");
    const conn = await connect(AMQP_URL, { name, logger });
    onTeardown(() => conn.close());
    const reconnected = new Promise((r) => conn.once("connected", r));
    expect(await killConnection(name)).toBe(1);
    await reconnected;
    const logged = logger.lines.join("\n");
    expect(logged).toContain(`warren: reconnected to ${redacted(AMQP_URL)}`);
    expect(logged).not.toContain(`${user}:${password}@`);
  });
});

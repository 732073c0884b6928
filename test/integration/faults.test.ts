import { randomBytes } from "node:crypto";
import net from "node:net";
import type { ConsumeMessage } from "amqplib";
import { describe, expect, it } from "vitest";
import { CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { PointsClient, servePoints } from "../../generated/points/index.js";
import { DIRECT_REPLY_TO, RpcError, connect } from "../../src/index.js";
import { calculatorHandlers } from "../../examples/services/calculator.js";
import { deleteAfter, killConnection, onTeardown, openConnection, recordingLogger, sleep, uniqueName } from "../helpers/broker.js";
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
    await servePoints(server, { addPoint: async ({ x, y }) => { if (x !== 7) await gate; return { count: 1, centroid: { x, y } }; } }, { queue });
    const name = uniqueName("client-conn");
    const conn = await openConnection(name);
    const events: string[] = [];
    for (const e of ["disconnected", "reconnecting", "connected"]) conn.on(e, () => events.push(e));
    const client = await conn.client({ queues: { Points: queue } });
    onTeardown(() => client.close());
    const points = new PointsClient(client);
    const settled = Promise.allSettled([1, 2, 3].map((x) => points.addPoint({ x, y: 0 }, { timeoutMs: 10_000 })));
    await sleep(100);
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
    await serveCalculator(server, { ...calculatorHandlers, add: async ({ a, b }) => { runs++; await sleep(3000); return { sum: a + b }; } }, { queue });
    const name = uniqueName("client-conn");
    const conn = await openConnection(name);
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    const call = new CalculatorClient(client).add({ a: 20, b: 22 }, { timeoutMs: 10_000 });
    await sleep(100);
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
    const client = await conn.client({ queues: { Calculator: queue } });
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
    await sleep(100);
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
    for (let i = 0; i < 100 && !logger.lines.some((l) => l.includes("consuming")); i++) await sleep(50);
    expect(logger.lines.join("\n")).toContain("cancelled the consumer");
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    await expect(new CalculatorClient(client).add({ a: 3, b: 4 }, { timeoutMs: 5000 })).resolves.toEqual({ sum: 7 });
  });
});

describe("several broker addresses", () => {
  const dead = "amqp://guest:s3cret-pw@127.0.0.1:1"; // nothing listens on port 1: refused at once
  const live = "amqp://guest:guest@127.0.0.1:5672";

  it("skips an address that refuses and connects to the next; url names the one in use", async () => {
    const conn = await connect([dead, live], { name: uniqueName("conn"), logger: recordingLogger() });
    onTeardown(() => conn.close());
    expect(conn.url).toBe("amqp://guest:***@127.0.0.1:5672");
    const queue = deleteAfter(uniqueName("calc"));
    const server = conn.server();
    onTeardown(() => server.close());
    await serveCalculator(server, calculatorHandlers, { queue });
    const client = await conn.client({ queues: { Calculator: queue } });
    onTeardown(() => client.close());
    await expect(new CalculatorClient(client).add({ a: 1, b: 2 })).resolves.toEqual({ sum: 3 });
  });

  it("names every address and its failure when none accepts, without passwords", async () => {
    const err = await connect([dead, "amqp://guest:other-pw@127.0.0.1:2"], { connectTimeoutMs: 2000 }).then(
      () => { throw new Error("expected the connection to fail"); },
      (e: RpcError) => e,
    );
    expect(err.code).toBe("connection_lost");
    expect(err.message).toBe(
      "cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1 (ECONNREFUSED), amqp://guest:***@127.0.0.1:2 (ECONNREFUSED): start one with `rabbitmq-server -detached` (or set AMQP_URL)",
    );
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
    expect(conn.url).toBe("amqp://guest:***@127.0.0.1:5672"); // ...and landed on `live` in the same attempt
    expect(logger.lines.filter((l) => l.startsWith("warren: reconnected"))).toEqual(["warren: reconnected to amqp://guest:***@127.0.0.1:5672 after 1 attempt(s)"]);
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
    for (let i = 0; i < 200 && !slow.output.includes("handling 40"); i++) await sleep(25);
    expect(slow.output).toContain("handling 40");
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
    for (let i = 0; i < 200 && replies.size < answered; i++) await sleep(25);
    await sleep(200);
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
    await servePoints(server, { addPoint: async ({ x, y }) => { await sleep(2); return { count: 1, centroid: { x, y } }; } }, { queue });
    const conn = await openConnection();
    const client = await conn.client({ queues: { Points: queue } });
    onTeardown(() => client.close());
    const points = new PointsClient(client);
    const timeoutMs = 8000;
    const started = Date.now();
    const calls = Array.from({ length: 1000 }, (_, i) =>
      points.addPoint({ x: i, y: 0 }, { timeoutMs }).then((r) => {
        expect(r.centroid.x).toBe(i);
        return Date.now();
      }, (err: RpcError) => {
        expect(["connection_lost", "timeout", "no_server"]).toContain(err.code);
        return Date.now();
      }),
    );
    await sleep(50);
    const { execFileSync } = await import("node:child_process");
    execFileSync("rabbitmqctl", ["close_all_connections", "warren fault test"], { stdio: "ignore" });
    const settledAt = await Promise.all(calls);
    expect(Math.max(...settledAt) - started).toBeLessThan(timeoutMs + 1000); // no call outlived its deadline
    expect(client.pendingCount).toBe(0);
    await expect(points.addPoint({ x: 1, y: 2 }, { timeoutMs: 15_000 })).resolves.toEqual({ count: 1, centroid: { x: 1, y: 2 } });
  }, 60_000);
});

describe("security basics", () => {
  it("never puts credentials in connection errors", async () => {
    const err = await connect("amqp://guest:s3cret-pw@127.0.0.1:1", { connectTimeoutMs: 2000 }).then(
      () => { throw new Error("expected the connection to fail"); },
      (e: RpcError) => e,
    );
    expect(err.code).toBe("connection_lost");
    expect(err.message).toContain("amqp://guest:***@127.0.0.1:1");
    expect(err.message).not.toContain("s3cret-pw");
    expect(err.message).toContain("rabbitmq-server -detached");
  });

  it("never puts credentials in reconnection logs", async () => {
    const logger = recordingLogger();
    const name = uniqueName("conn");
    const conn = await connect("amqp://guest:guest@127.0.0.1:5672", { name, logger });
    onTeardown(() => conn.close());
    const reconnected = new Promise((r) => conn.once("connected", r));
    await killConnection(name);
    await reconnected;
    expect(logger.lines.join("\n")).toContain("amqp://guest:***@127.0.0.1:5672");
    expect(logger.lines.join("\n")).not.toContain("guest:guest");
  });
});

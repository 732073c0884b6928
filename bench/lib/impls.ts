/**
 * The three RPC implementations under test, each as a client factory (used in
 * the benchmark process) and a server factory (run in its own child process by
 * default, see server-child.ts):
 *
 * - `baseline`: hand-written amqplib RPC. Direct reply-to, TCP_NODELAY, JSON
 *   bodies, no validation, server replies then acks, prefetch 64.
 * - `warren`: the generated CalculatorClient/BenchClient over `conn.client()`,
 *   serveCalculator/serveBench on `conn.server({ prefetch: 64 })`; full
 *   validation at both ends.
 * - `rmqc`: rabbitmq-client's RPCClient and a createConsumer() server
 *   (prefetch 64, replies then acks), TCP_NODELAY on. Optional dependency.
 */
import amqp, { type ConsumeMessage } from "amqplib";
import { connect, lineLogger } from "../../src/index.js";
import { CalculatorClient, serveCalculator, type CalculatorHandlers } from "../../generated/calculator/index.js";
import { BenchClient, serveBench } from "../../generated/bench/index.js";
import type { Batch } from "../../generated/bench/types.js";

/**
 * `wire*` are experiments, not part of the default run: the baseline's code
 * sending warren's exact wire properties (no validation, no warren JS), to
 * separate what warren's protocol costs (amqplib codec + broker) from what its
 * JavaScript costs. `wire` = all of warren's properties; `wire-noexp` without
 * the per-message `expiration`; `wire-nohdr` without the headers table;
 * `wire-min` = only content_type + type (what a validating protocol needs).
 * `mix-wc` = warren's client against the `wire` server, `mix-ws` = the `wire`
 * client against warren's server: next to `wire` and `warren` they split
 * warren's cost into its client's and its server's.
 */
export type ImplName = "baseline" | "warren" | "rmqc" | "wire" | "wire-noexp" | "wire-nohdr" | "wire-min" | "wire-nomand" | "wire-nouuid" | "mix-wc" | "mix-ws" | "warren-nocheck";
export const IMPL_LABEL: Record<ImplName, string> = {
  baseline: "amqplib baseline",
  warren: "warren",
  rmqc: "rabbitmq-client",
  wire: "baseline + warren wire props",
  "wire-noexp": "wire without expiration",
  "wire-nohdr": "wire without headers",
  "wire-min": "wire: content_type+type only",
  "wire-nomand": "wire without mandatory",
  "wire-nouuid": "wire with counter ids",
  "mix-wc": "warren client, wire server",
  "mix-ws": "wire client, warren server",
  "warren-nocheck": "warren, no consumer check",
};

/** Queues of one implementation: one per method. */
export interface Queues {
  add: string;
  echo: string;
}

export interface BenchClientImpl {
  add(req: { a: number; b: number }): Promise<unknown>;
  echo(req: Batch): Promise<unknown>;
  close(): Promise<void>;
}

export interface BenchServerImpl {
  close(): Promise<void>;
}

export const PREFETCH = 64;
const quiet = lineLogger((line) => console.error(line));

// ---------------------------------------------------------------- baseline

/** Settles pending calls with an Error value (their reply check then fails) when the connection drops, so a broker restart aborts the run instead of hanging it. */
function failPendingOnClose(conn: amqp.ChannelModel, pending: Map<string, (value: unknown) => void>): void {
  conn.on("error", () => {});
  conn.on("close", () => {
    for (const resolve of pending.values()) resolve(new Error("connection closed"));
    pending.clear();
  });
}

/** A hand-written caller's plumbing: connection, channel, and a direct reply-to consumer resolving pending calls by correlation id. */
async function openReplyConsumer(url: string) {
  const conn = await amqp.connect(url, { noDelay: true });
  const ch = await conn.createChannel();
  const pending = new Map<string, (value: unknown) => void>();
  failPendingOnClose(conn, pending);
  await ch.consume(
    "amq.rabbitmq.reply-to",
    (msg) => {
      if (msg === null) return;
      const id = msg.properties.correlationId as string;
      const resolve = pending.get(id);
      if (resolve === undefined) return;
      pending.delete(id);
      resolve(JSON.parse(msg.content.toString("utf8")));
    },
    { noAck: true },
  );
  return { conn, ch, pending };
}

export async function baselineClient(url: string, q: Queues): Promise<BenchClientImpl> {
  const { conn, ch, pending } = await openReplyConsumer(url);
  let next = 0;
  const call = (queue: string, body: unknown): Promise<unknown> =>
    new Promise((resolve) => {
      const id = String(++next);
      pending.set(id, resolve);
      ch.publish("", queue, Buffer.from(JSON.stringify(body)), { correlationId: id, replyTo: "amq.rabbitmq.reply-to" });
    });
  return {
    add: (req) => call(q.add, req),
    echo: (req) => call(q.echo, req),
    close: async () => {
      await ch.close().catch(() => {});
      await conn.close().catch(() => {});
    },
  };
}

export async function baselineServer(url: string, q: Queues): Promise<BenchServerImpl> {
  const conn = await amqp.connect(url, { noDelay: true });
  const serve = async (queue: string, handle: (req: any) => unknown) => {
    const ch = await conn.createChannel();
    await ch.assertQueue(queue, { durable: true });
    await ch.prefetch(PREFETCH);
    await ch.consume(queue, (msg: ConsumeMessage | null) => {
      if (msg === null) return;
      const res = handle(JSON.parse(msg.content.toString("utf8")));
      ch.publish("", msg.properties.replyTo as string, Buffer.from(JSON.stringify(res)), { correlationId: msg.properties.correlationId });
      ch.ack(msg);
    });
  };
  await serve(q.add, (r: { a: number; b: number }) => ({ sum: r.a + r.b }));
  await serve(q.echo, (r: Batch) => r);
  return { close: () => conn.close().catch(() => {}) };
}

// ---------------------------------------------------------------- wire experiments

interface WireFlags {
  expiration: boolean;
  headers: boolean;
  full: boolean; // timestamp, mandatory, uuid correlation ids
  mandatory?: boolean; // with full: false leaves mandatory out
  uuid?: boolean; // with full: false uses counter ids
}
const WIRE: Record<string, WireFlags> = {
  wire: { expiration: true, headers: true, full: true },
  "wire-noexp": { expiration: false, headers: true, full: true },
  "wire-nohdr": { expiration: true, headers: false, full: true },
  "wire-min": { expiration: false, headers: false, full: false },
  "wire-nomand": { expiration: true, headers: true, full: true, mandatory: false },
  "wire-nouuid": { expiration: true, headers: true, full: true, uuid: false },
};

function wireClient(flags: WireFlags) {
  return async (url: string, q: Queues): Promise<BenchClientImpl> => {
    const { v4 } = await import("uuid");
    const { conn, ch, pending } = await openReplyConsumer(url);
    let next = 0;
    const call = (queue: string, type: string, body: unknown): Promise<unknown> =>
      new Promise((resolve) => {
        const id = flags.full && flags.uuid !== false ? v4() : String(++next);
        pending.set(id, resolve);
        const deadline = Date.now() + 30_000;
        ch.publish("", queue, Buffer.from(JSON.stringify(body)), {
          correlationId: id,
          replyTo: "amq.rabbitmq.reply-to",
          type,
          contentType: "application/json",
          ...(flags.expiration ? { expiration: String(Math.max(1, deadline - Date.now())) } : {}),
          ...(flags.full ? { timestamp: Math.floor(Date.now() / 1000), mandatory: flags.mandatory !== false } : {}),
          ...(flags.headers ? { headers: { "x-warren-deadline": deadline, "x-warren-protocol": 1 } } : {}),
        });
      });
    return {
      add: (req) => call(q.add, "add", req),
      echo: (req) => call(q.echo, "echo", req),
      close: async () => {
        await ch.close().catch(() => {});
        await conn.close().catch(() => {});
      },
    };
  };
}

async function wireServer(url: string, q: Queues): Promise<BenchServerImpl> {
  const conn = await amqp.connect(url, { noDelay: true });
  const serve = async (queue: string, handle: (req: any) => unknown) => {
    const ch = await conn.createChannel();
    await ch.assertQueue(queue, { durable: true });
    await ch.prefetch(PREFETCH);
    await ch.consume(queue, (msg: ConsumeMessage | null) => {
      if (msg === null) return;
      const res = handle(JSON.parse(msg.content.toString("utf8")));
      ch.publish("", msg.properties.replyTo as string, Buffer.from(JSON.stringify(res)), {
        correlationId: msg.properties.correlationId,
        type: "result",
        contentType: "application/json",
      });
      ch.ack(msg);
    });
  };
  await serve(q.add, (r: { a: number; b: number }) => ({ sum: r.a + r.b }));
  await serve(q.echo, (r: Batch) => r);
  return { close: () => conn.close().catch(() => {}) };
}

// ---------------------------------------------------------------- warren

export function warrenClient(url: string, q: Queues): Promise<BenchClientImpl> {
  return warrenClientWith(url, q, "bench-warren-client", false);
}

/** warren's generated clients on a connection named `name`; `waitForServer` as the client option. */
async function warrenClientWith(url: string, q: Queues, name: string, waitForServer: boolean): Promise<BenchClientImpl> {
  const conn = await connect(url, { name, logger: quiet });
  const transport = await conn.client({ queues: { Calculator: q.add, Bench: q.echo }, waitForServer });
  const calc = new CalculatorClient(transport);
  const bench = new BenchClient(transport);
  return {
    add: (req) => calc.add(req),
    echo: (req) => bench.echo(req),
    close: async () => {
      await transport.close();
      await conn.close();
    },
  };
}

/**
 * `warren-nocheck` (experiment): warren's client with `waitForServer: true`,
 * which skips the check before each call that anyone consumes the queue
 * (src/rpc/presence.ts); next to `warren` it shows what that check costs.
 */
export function warrenClientNoCheck(url: string, q: Queues): Promise<BenchClientImpl> {
  return warrenClientWith(url, q, "bench-warren-client-nocheck", true);
}

/** The Calculator the benchmarks serve: answers at once, no work. */
export const benchCalculatorHandlers: CalculatorHandlers = {
  add: ({ a, b }) => ({ sum: a + b }),
  divide: ({ dividend, divisor }) => ({ quotient: dividend / divisor }),
  summarize: ({ values, statistic, label }) => ({ statistic, value: values[0]!, count: values.length, label: label ?? null }),
  centroid: ({ points }) => points[0]!,
};

export async function warrenServer(url: string, q: Queues): Promise<BenchServerImpl> {
  const conn = await connect(url, { name: "bench-warren-server", logger: quiet });
  const server = conn.server({ prefetch: PREFETCH });
  await serveCalculator(
    server,
    benchCalculatorHandlers,
    { queue: q.add },
  );
  await serveBench(server, { echo: (batch) => batch }, { queue: q.echo });
  return {
    close: async () => {
      await server.close();
      await conn.close();
    },
  };
}

// ---------------------------------------------------------------- rabbitmq-client

/** rabbitmq-client, or undefined when it is not installed. */
export async function loadRabbitmqClient(): Promise<any | undefined> {
  try {
    const name = "rabbitmq-client"; // not a literal import: the package is optional
    return await import(name);
  } catch {
    return undefined;
  }
}

export async function rmqcClient(url: string, q: Queues): Promise<BenchClientImpl> {
  const lib = await loadRabbitmqClient();
  if (lib === undefined) throw new Error("rabbitmq-client not installed");
  const rabbit = new lib.Connection({ url, noDelay: true, connectionName: "bench-rmqc-client" });
  rabbit.on("error", (err: Error) => console.error(`rabbitmq-client: ${err.message}`));
  const rpc = rabbit.createRPCClient({ confirm: false, timeout: 30_000 });
  const send = async (queue: string, body: unknown) => (await rpc.send({ routingKey: queue }, body)).body as unknown;
  // Prime the channel (and its reply consumer) outside the measurement.
  await rabbit.onConnect(5000, true);
  return {
    add: (req) => send(q.add, req),
    echo: (req) => send(q.echo, req),
    close: async () => {
      await rpc.close();
      await rabbit.close();
    },
  };
}

export async function rmqcServer(url: string, q: Queues): Promise<BenchServerImpl> {
  const lib = await loadRabbitmqClient();
  if (lib === undefined) throw new Error("rabbitmq-client not installed");
  const rabbit = new lib.Connection({ url, noDelay: true, connectionName: "bench-rmqc-server" });
  rabbit.on("error", (err: Error) => console.error(`rabbitmq-client: ${err.message}`));
  const consumer = (queue: string, handle: (req: any) => unknown) =>
    new Promise<any>((resolve, reject) => {
      const sub = rabbit.createConsumer(
        { queue, queueOptions: { durable: true }, qos: { prefetchCount: PREFETCH } },
        async (msg: { body: unknown }, reply: (body: unknown) => Promise<void>) => {
          await reply(handle(msg.body));
        },
      );
      sub.once("ready", () => resolve(sub));
      sub.once("error", reject);
    });
  const subs = [
    await consumer(q.add, (r: { a: number; b: number }) => ({ sum: r.a + r.b })),
    await consumer(q.echo, (r: Batch) => r),
  ];
  return {
    close: async () => {
      await Promise.all(subs.map((s) => s.close()));
      await rabbit.close();
    },
  };
}

export const CLIENTS: Record<ImplName, (url: string, q: Queues) => Promise<BenchClientImpl>> = {
  baseline: baselineClient,
  warren: warrenClient,
  rmqc: rmqcClient,
  wire: wireClient(WIRE.wire!),
  "wire-noexp": wireClient(WIRE["wire-noexp"]!),
  "wire-nohdr": wireClient(WIRE["wire-nohdr"]!),
  "wire-min": wireClient(WIRE["wire-min"]!),
  "wire-nomand": wireClient(WIRE["wire-nomand"]!),
  "wire-nouuid": wireClient(WIRE["wire-nouuid"]!),
  "mix-wc": warrenClient,
  "mix-ws": wireClient(WIRE.wire!),
  "warren-nocheck": warrenClientNoCheck,
};

export const SERVERS: Record<ImplName, (url: string, q: Queues) => Promise<BenchServerImpl>> = {
  baseline: baselineServer,
  warren: warrenServer,
  rmqc: rmqcServer,
  wire: wireServer,
  "wire-noexp": wireServer,
  "wire-nohdr": wireServer,
  "wire-min": wireServer,
  "wire-nomand": wireServer,
  "wire-nouuid": wireServer,
  "mix-wc": wireServer,
  "mix-ws": warrenServer,
  "warren-nocheck": warrenServer,
};

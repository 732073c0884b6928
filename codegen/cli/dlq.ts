/**
 * `warren dlq list|show|replay|purge`: the dead-letter queue of an event
 * subscription (docs/PROTOCOL.md, "Acknowledgement, retries and dead letters").
 *
 * - list, show and `replay --dry-run` browse: they take messages with
 *   `basic.get` without acknowledging them and give every one back at the end
 *   (`basic.nack`, requeue). RabbitMQ returns them to their place in the queue
 *   (marked redelivered); nothing is removed, and while a browse runs the
 *   messages it holds are invisible to other consumers.
 * - replay publishes each dead letter's body, with its properties and its
 *   headers less the dead-letter ones, to the exchange and routing key in its
 *   `x-warren-exchange` / `x-warren-routing-key` headers (mandatory, on a
 *   confirm channel), and only after the broker confirms it routed the copy
 *   does it acknowledge (remove) the dead letter. A copy that no queue takes
 *   comes back (`basic.return`) and its dead letter stays.
 * - purge deletes every message of the queue, only with `--yes`.
 */
import {
  ATTEMPT_HEADER,
  DEAD_ERROR_HEADER,
  DEAD_QUEUE_HEADER,
  DEAD_REASON_HEADER,
  ORIGIN_EXCHANGE_HEADER,
  ORIGIN_ROUTING_KEY_HEADER,
  type Connection,
} from "../../src/index.js";
import { inspectQueue, withConnection, type BrokerFlags, type RawChannel } from "./broker.js";
import { findEvent, findService, loadContracts, splitTarget, type ContractFlags } from "./contracts.js";
import { CliError, Exit } from "./exit.js";
import type { Io } from "./io.js";

/** The subcommands. */
export type DlqAction = "list" | "show" | "replay" | "purge";

/** Flags of `warren dlq …`. */
export interface DlqFlags extends ContractFlags, BrokerFlags {
  readonly group?: string | undefined;
  readonly queue?: string | undefined;
  readonly limit?: string | undefined;
  readonly json?: boolean | undefined;
  readonly dryRun?: boolean | undefined;
  readonly id?: string | undefined;
  readonly yes?: boolean | undefined;
}

/** What `basic.get` returns (amqplib's GetMessage). */
type Got = Exclude<Awaited<ReturnType<RawChannel["get"]>>, false>;

/** One dead letter as the commands show it. */
interface DeadLetter {
  readonly n: number;
  readonly messageId: string | null;
  readonly type: string | null;
  readonly reason: string | null;
  readonly error: string | null;
  readonly attempt: number | null;
  readonly exchange: string | null;
  readonly routingKey: string | null;
  readonly deadQueue: string | null;
  readonly timestamp: string | null;
  readonly redelivered: boolean;
  readonly properties: Record<string, unknown>;
  readonly headers: Record<string, unknown>;
  readonly body: unknown;
}

const DEAD_HEADERS = new Set([ATTEMPT_HEADER, DEAD_REASON_HEADER, DEAD_ERROR_HEADER, DEAD_QUEUE_HEADER, ORIGIN_EXCHANGE_HEADER, ORIGIN_ROUTING_KEY_HEADER]);

/** Runs `warren dlq <action>`; `positional` are the arguments after the action. Resolves to the exit status. */
export async function runDlq(action: DlqAction, positional: readonly string[], flags: DlqFlags, io: Io): Promise<number> {
  const args = [...positional];
  const queue = flags.queue ?? (await queueOf(args.shift(), flags, io));
  if (flags.queue !== undefined && flags.group !== undefined) throw new CliError(Exit.usage, "--queue names the dead-letter queue itself; it does not combine with --group");
  const selector = action === "show" ? args.shift() : undefined;
  if (action === "show" && selector === undefined) throw new CliError(Exit.usage, "which dead letter? give its number in `warren dlq list` or its message id");
  if (args.length > 0) throw new CliError(Exit.usage, `unexpected argument "${args[0]}"`);
  const limit = flags.limit === undefined ? undefined : parseLimit(flags.limit);
  return withConnection(flags, io, async (conn) => {
    const state = await inspectQueue(conn, queue);
    if (state === undefined) throw new CliError(Exit.noQueue, `no queue "${queue}" on the broker (no subscriber has dead-lettered anything there, or the name is wrong)`);
    switch (action) {
      case "list":
        return list(conn, queue, state.messageCount, limit ?? 100, flags, io);
      case "show":
        return show(conn, queue, state.messageCount, selector!, flags, io);
      case "replay":
        return replay(conn, queue, state.messageCount, limit, flags, io);
      case "purge":
        return purge(conn, queue, state.messageCount, flags, io);
    }
  });
}

/**
 * `<exchange>.<event>.<group>.dead`, or `<exchange>.<event>.dead` without a
 * group; for `Service` alone, the dead letters of a subscription to several of
 * its events (`subscribeAll`): `<exchange>.<group>.dead`, or `<exchange>.dead`.
 */
async function queueOf(target: string | undefined, flags: DlqFlags, io: Io): Promise<string> {
  if (target === undefined) throw new CliError(Exit.usage, "which dead letters? write Service.event [--group GROUP] (Service alone for a subscribeAll queue's), or --queue NAME");
  const { service: serviceName, member } = splitTarget(target);
  if (member === "") throw new CliError(Exit.usage, `"${target}" names no event; write Service.event, e.g. Orders.order_placed, or Service alone for a subscribeAll queue's dead letters`);
  const contracts = await loadContracts(flags, io.cwd);
  const service = findService(contracts, serviceName);
  const base = member === undefined ? service.exchange.name : `${service.exchange.name}.${findEvent(service, member).wireName}`;
  return flags.group === undefined ? `${base}.dead` : `${base}.${flags.group}.dead`;
}

function parseLimit(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1) throw new CliError(Exit.usage, `--limit must be a whole number of at least 1, got "${text}"`);
  return n;
}

/**
 * Takes up to `max` messages without acknowledging them, runs `fn` with them,
 * and gives back (nack, requeue) every one `fn` did not acknowledge, even when
 * `fn` fails.
 */
async function browse<T>(conn: Connection, queue: string, max: number, fn: (channel: RawChannel, messages: Got[]) => Promise<T>): Promise<T> {
  const channel = await conn.channel();
  let closed: Error | undefined;
  channel.on("error", (err: Error) => (closed = err));
  try {
    const messages: Got[] = [];
    while (messages.length < max) {
      const msg = await channel.get(queue, { noAck: false });
      if (msg === false) break;
      messages.push(msg);
    }
    return await fn(channel, messages);
  } finally {
    // Anything still unacknowledged goes back; closing the channel would do the same, this says it.
    if (closed === undefined) {
      channel.nackAll(true);
      await channel.close().catch(() => {});
    }
  }
}

function deadLetter(msg: Got, n: number): DeadLetter {
  const p = msg.properties;
  const headers = (p.headers ?? {}) as Record<string, unknown>;
  const text = (k: string) => (headers[k] === undefined ? null : String(headers[k]));
  const attempt = headers[ATTEMPT_HEADER];
  let body: unknown;
  const raw = msg.content.toString("utf8");
  try {
    body = JSON.parse(raw);
  } catch {
    body = raw;
  }
  const properties = Object.fromEntries(Object.entries(p).filter(([k, v]) => k !== "headers" && v !== undefined));
  return {
    n,
    messageId: typeof p.messageId === "string" ? p.messageId : null,
    type: typeof p.type === "string" ? p.type : null,
    reason: text(DEAD_REASON_HEADER),
    error: text(DEAD_ERROR_HEADER),
    attempt: attempt === undefined ? null : Number(attempt),
    exchange: text(ORIGIN_EXCHANGE_HEADER),
    routingKey: text(ORIGIN_ROUTING_KEY_HEADER),
    deadQueue: text(DEAD_QUEUE_HEADER),
    timestamp: typeof p.timestamp === "number" ? new Date(p.timestamp * 1000).toISOString() : null,
    redelivered: msg.fields.redelivered,
    properties,
    headers,
    body,
  };
}

const clip = (s: string | null, n: number) => (s === null ? "-" : s.length > n ? `${s.slice(0, n - 1)}…` : s).replace(/\s+/g, " ");

async function list(conn: Connection, queue: string, count: number, limit: number, flags: DlqFlags, io: Io): Promise<number> {
  return browse(conn, queue, Math.min(count, limit), async (_channel, messages) => {
    const letters = messages.map((m, i) => deadLetter(m, i + 1));
    if (flags.json) {
      io.out(JSON.stringify({ queue, count, dead: letters }, null, 2));
      return Exit.ok;
    }
    if (count === 0) {
      io.out(`${queue}: no dead letters`);
      return Exit.ok;
    }
    io.out(`${queue}: ${count} dead letter${count === 1 ? "" : "s"}${letters.length < count ? ` (showing ${letters.length}; --limit N for more)` : ""}`);
    const rows = [["#", "message id", "type", "reason", "attempt", "routing key", "error"], ...letters.map((d) => [String(d.n), d.messageId ?? "-", d.type ?? "-", d.reason ?? "-", d.attempt === null ? "-" : String(d.attempt), d.routingKey ?? "-", clip(d.error, 60)])];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) io.out(`  ${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join("  ")}`);
    return Exit.ok;
  });
}

async function show(conn: Connection, queue: string, count: number, selector: string, flags: DlqFlags, io: Io): Promise<number> {
  return browse(conn, queue, count, async (_channel, messages) => {
    const letters = messages.map((m, i) => deadLetter(m, i + 1));
    const found = /^\d+$/.test(selector) ? letters[Number(selector) - 1] : letters.find((d) => d.messageId === selector);
    if (found === undefined) throw new CliError(Exit.usage, `no dead letter ${/^\d+$/.test(selector) ? `#${selector}` : `with message id "${selector}"`} in ${queue} (it holds ${letters.length})`);
    if (flags.json) {
      io.out(JSON.stringify(found, null, 2));
      return Exit.ok;
    }
    io.out(
      [
        `dead letter #${found.n} of ${queue}`,
        `  message id   ${found.messageId ?? "-"}`,
        `  type         ${found.type ?? "-"}`,
        `  reason       ${found.reason ?? "-"}`,
        `  error        ${found.error ?? "-"}`,
        `  attempt      ${found.attempt ?? "-"}`,
        `  published to ${found.exchange ?? "-"} with routing key ${found.routingKey ?? "-"}`,
        `  dead queue   ${found.deadQueue ?? "-"}`,
        `  timestamp    ${found.timestamp ?? "-"}`,
        `  properties   ${JSON.stringify(found.properties)}`,
        `  headers      ${JSON.stringify(found.headers)}`,
        "  body",
        JSON.stringify(found.body, null, 2).replace(/^/gm, "    "),
      ].join("\n"),
    );
    return Exit.ok;
  });
}

async function replay(conn: Connection, queue: string, count: number, limit: number | undefined, flags: DlqFlags, io: Io): Promise<number> {
  return browse(conn, queue, count, async (channel, messages) => {
    const chosen = messages
      .map((msg, i) => ({ msg, letter: deadLetter(msg, i + 1) }))
      .filter(({ letter }) => flags.id === undefined || letter.messageId === flags.id)
      .slice(0, limit ?? Infinity);
    if (flags.id !== undefined && chosen.length === 0) throw new CliError(Exit.usage, `no dead letter with message id "${flags.id}" in ${queue}`);
    const replayable = chosen.filter(({ letter }) => letter.exchange !== null && letter.routingKey !== null);
    for (const { letter } of chosen) if (!replayable.some((r) => r.letter === letter)) io.err(`warren: warning: #${letter.n} has no ${ORIGIN_EXCHANGE_HEADER}/${ORIGIN_ROUTING_KEY_HEADER} headers (not a warren dead letter); left in the queue`);
    if (flags.dryRun) {
      for (const { letter } of replayable) io.out(`would replay #${letter.n} ${letter.messageId ?? "(no message id)"} to exchange ${letter.exchange} with routing key ${letter.routingKey}`);
      io.out(`dry run: ${replayable.length} of ${count} dead letter${count === 1 ? "" : "s"} would be replayed; nothing changed`);
      return Exit.ok;
    }
    const publisher = await conn.confirmChannel();
    let returned = false;
    let failure: Error | undefined;
    publisher.on("return", () => (returned = true));
    publisher.on("error", (err: Error) => (failure = err));
    let done = 0;
    try {
      for (const { msg, letter } of replayable) {
        returned = false;
        const headers = Object.fromEntries(Object.entries(letter.headers).filter(([k]) => !DEAD_HEADERS.has(k)));
        const { headers: _old, ...props } = msg.properties as unknown as Record<string, unknown>;
        const options = { ...Object.fromEntries(Object.entries(props).filter(([, v]) => v !== undefined)), headers, mandatory: true };
        try {
          await new Promise<void>((resolve, reject) => {
            publisher.publish(letter.exchange!, letter.routingKey!, msg.content, options, (err: unknown) => (err ? reject(err) : resolve()));
          });
        } catch (err) {
          throw new CliError(Exit.failure, `replaying #${letter.n} to exchange ${letter.exchange} failed: ${failure?.message ?? (err as Error).message}; it and the rest stay dead letters (${done} replayed)`);
        }
        if (returned) {
          io.err(`warren: warning: #${letter.n}: no queue is bound to exchange ${letter.exchange} for routing key ${letter.routingKey}; left in the queue`);
          continue;
        }
        channel.ack(msg);
        done++;
        io.out(`replayed #${letter.n} ${letter.messageId ?? "(no message id)"} to ${letter.exchange} ${letter.routingKey}`);
      }
    } finally {
      if (failure === undefined) await publisher.close().catch(() => {});
    }
    io.out(`replayed ${done} of ${count} dead letter${count === 1 ? "" : "s"} from ${queue}`);
    return done === replayable.length && replayable.length === chosen.length ? Exit.ok : Exit.failure;
  });
}

async function purge(conn: Connection, queue: string, count: number, flags: DlqFlags, io: Io): Promise<number> {
  if (!flags.yes) throw new CliError(Exit.usage, `${queue} holds ${count} dead letter${count === 1 ? "" : "s"}; add --yes to delete them for good`);
  const channel = await conn.channel();
  try {
    const { messageCount } = await channel.purgeQueue(queue);
    io.out(`purged ${messageCount} dead letter${messageCount === 1 ? "" : "s"} from ${queue}`);
    return Exit.ok;
  } finally {
    await channel.close().catch(() => {});
  }
}

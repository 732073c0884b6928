/** Test helpers: connections with unique names, unique queues, teardown, broker faults. */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import type { Channel } from "amqplib";
import { afterEach } from "vitest";
import { connect, lineLogger, type Connection, type Logger } from "../../src/index.js";
import { bindingsQueueOf } from "../../src/events/bindings.js";

const exec = promisify(execFile);

/**
 * The broker the tests use: `AMQP_URL`, else RabbitMQ on this machine — the
 * same default as `connect()`. Tests that need a URL write this one, never a
 * host of their own.
 */
export const AMQP_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

/** The user-info part (`user`, `password`, as written in the URL) of an `amqp(s)://` URL; empty strings when absent. */
export function credentialsOf(url: string): { user: string; password: string } {
  const m = /^amqps?:\/\/([^:@/]*)(?::([^@/]*))?@/.exec(url);
  return { user: m?.[1] ?? "", password: m?.[2] ?? "" };
}

/**
 * `url` as warren must print it: the password replaced by `***`. Written here
 * on its own (not with the runtime's `redactUrl`), so a test comparing against
 * it checks the redaction instead of repeating it.
 */
export function redacted(url: string): string {
  return url.replace(/^(amqps?:\/\/[^:@/]*):[^@/]*@/, "$1:***@");
}

/**
 * An address on the broker's host where nothing listens (`port` 1, 2, …), with
 * `password`: for tests that must fail to connect. The broker's scheme, user and
 * host come from {@link AMQP_URL}; only port and password differ.
 */
export function unreachableUrl(port: number, password: string): string {
  const url = new URL(AMQP_URL);
  url.port = String(port);
  url.password = password;
  url.pathname = "";
  url.search = "";
  return url.toString();
}

const cleanups: (() => Promise<unknown>)[] = [];
/** Queue and exchange deletions: run after every other teardown, so no consumer still running re-declares what was deleted. */
const deletions: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
  while (deletions.length > 0) await deletions.pop()!().catch(() => {});
});

/** A name no other test uses, e.g. `__test_9f2c4e_ab12cd34__.calc` (the run's tag, then the test's; the run checks at its end that none is left). */
export function uniqueName(suffix = ""): string {
  const run = process.env.WARREN_TEST_RUN ?? "norun";
  return `__test_${run}_${randomBytes(4).toString("hex")}__${suffix ? `.${suffix}` : ""}`;
}

/** A logger that records lines instead of printing them. */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, ...lineLogger((line) => lines.push(line)) };
}

/** Opens a connection named `name` (visible to rabbitmqctl) and closes it after the test. */
export async function openConnection(name = uniqueName("conn"), logger: Logger = recordingLogger()): Promise<Connection> {
  const conn = await connect(undefined, { name, logger });
  cleanups.push(() => conn.close());
  return conn;
}

/** Runs `fn` on a channel of a fresh connection after the test's other teardown (which must not depend on the test's own connections). */
function afterTestOnChannel(fn: (ch: Channel) => Promise<unknown>): void {
  deletions.push(async () => {
    const conn = await connect();
    try {
      await fn(await conn.channel());
    } finally {
      await conn.close();
    }
  });
}

/** Registers a queue for deletion after the test, with the binding record a consumer group's queue has (`<queue>.bindings`, if any). */
export function deleteAfter(queue: string): string {
  afterTestOnChannel(async (ch) => {
    await ch.deleteQueue(queue);
    await ch.deleteQueue(bindingsQueueOf(queue)); // deleting a queue that does not exist is fine
  });
  return queue;
}

/** Registers an exchange for deletion after the test. */
export function deleteExchangeAfter(exchange: string): string {
  afterTestOnChannel((ch) => ch.deleteExchange(exchange));
  return exchange;
}

/** Runs `fn` after the test (for child processes, servers, clients). */
export function onTeardown(fn: () => Promise<unknown> | unknown): void {
  cleanups.push(async () => fn());
}

/** Force-closes, from the broker side, every connection whose client-provided name is `name`. */
export async function killConnection(name: string): Promise<number> {
  const { stdout } = await exec("rabbitmqctl", ["list_connections", "pid", "client_properties", "--quiet", "--no-table-headers"]);
  const pids = stdout
    .split("\n")
    .filter((line) => line.includes(`{"connection_name","${name}"}`))
    .map((line) => line.split(/\s/)[0]!)
    .filter(Boolean);
  for (const pid of pids) await exec("rabbitmqctl", ["close_connection", pid, "closed by a warren fault test"]);
  return pids.length;
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Resolves once `check` holds (polled every 10 ms), failing with "timed out
 * waiting for `what`" after `ms`: a test waits on the condition it needs, not a
 * guessed delay.
 */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

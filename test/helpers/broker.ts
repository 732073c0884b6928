/** Test helpers: connections with unique names, unique queues, teardown, broker faults. */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import type { Channel } from "amqplib";
import { afterEach } from "vitest";
import { connect, type Connection, type Logger } from "../../src/index.js";

const exec = promisify(execFile);
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
  return { lines, warn: (m) => lines.push(m), error: (m) => lines.push(m) };
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

/** Registers a queue for deletion after the test. */
export function deleteAfter(queue: string): string {
  afterTestOnChannel((ch) => ch.deleteQueue(queue));
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

/**
 * The broker side of the `warren` command: one connection per command, made
 * with the runtime's `connect()`, that reports a failure to connect as one
 * line (status 4) and never reconnects behind the user's back for long.
 */
import { connect, type Connection, type Logger } from "../../src/index.js";
import { brokerError, CliError, Exit } from "./exit.js";
import type { Io } from "./io.js";

/** Flags that say where the broker is. */
export interface BrokerFlags {
  readonly url?: string | undefined;
}

/** A raw amqplib channel, as `Connection.channel()` gives it. */
export type RawChannel = Awaited<ReturnType<Connection["channel"]>>;

/**
 * Runtime warnings go to stderr as `warren: warning: …`, one line each. Takes
 * the message whether the logger is called `(message)` or `(fields, message)`.
 */
export function stderrLogger(io: Io): Logger {
  const line = (...args: unknown[]) => {
    const text = args.filter((a): a is string => typeof a === "string").join(" ") || JSON.stringify(args[0]);
    io.err(`warren: warning: ${text.replace(/\s*\n\s*/g, "; ")}`);
  };
  return { warn: line, error: line } as unknown as Logger;
}

/** Connects to `--url`, else `AMQP_URL`, else the default address; a failure is a {@link CliError} with status 4. */
export async function openConnection(flags: BrokerFlags, io: Io, name = "warren-cli"): Promise<Connection> {
  try {
    return await connect(flags.url, { name, logger: stderrLogger(io), connectTimeoutMs: 5000 });
  } catch (err) {
    throw brokerError(err, flags.url === undefined && process.env.AMQP_URL !== undefined ? "AMQP_URL" : "--url");
  }
}

/** Runs `fn` with a connection and closes it afterwards, whatever happens. */
export async function withConnection<T>(flags: BrokerFlags, io: Io, fn: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await openConnection(flags, io);
  try {
    return await fn(conn);
  } finally {
    await conn.close().catch(() => {});
  }
}

/** What a passive declare tells about a queue, or `undefined` when it does not exist. */
export interface QueueState {
  readonly messageCount: number;
  readonly consumerCount: number;
}

/**
 * Looks at a queue without creating it: a passive declare on a throwaway
 * channel. A missing queue makes the broker close that channel with 404,
 * which is an answer here, not a failure.
 */
export async function inspectQueue(conn: Connection, queue: string): Promise<QueueState | undefined> {
  const channel = await conn.channel();
  channel.on("error", () => {}); // the 404 close arrives as an error event too; it is handled below
  try {
    const ok = await channel.checkQueue(queue);
    return { messageCount: ok.messageCount, consumerCount: ok.consumerCount };
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw new CliError(Exit.failure, `cannot inspect queue "${queue}": ${(err as Error).message}`);
  } finally {
    await channel.close().catch(() => {});
  }
}

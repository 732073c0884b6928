/**
 * Keeps one consumer alive across channel and connection losses: opens a
 * channel, runs the owner's setup (declare, bind, prefetch), consumes, and
 * after an unexpected close starts over at once (then with capped backoff
 * while attempts fail) until closed. An attempt whose setup the broker does
 * not answer within {@link SETUP_LIMIT_MS} is given up and counts as failed,
 * so no lost reply can stop the consumer for good. A channel the broker closed because a
 * delivery stayed unacknowledged past its consumer timeout is reported in one
 * line naming what overran (see docs/FAILURES.md#long-handlers-and-consumer_timeout).
 */
import { logInfo, type Logger } from "../core/logging.js";
import type { CloseReason, Delivery, WireChannel } from "./channel-source.js";

/** What the broker reported when it closed a channel for a delivery left unacknowledged too long. */
export interface ConsumerTimeout {
  /** The timeout the broker applied, in ms (`consumer_timeout` in rabbitmq.conf); undefined when its message did not say. */
  readonly timeoutMs: number | undefined;
  /** The broker's own text. */
  readonly message: string;
}

/**
 * Whether `reason` is the broker closing a channel because a delivery on it
 * stayed unacknowledged longer than its consumer timeout (RabbitMQ: 406
 * PRECONDITION_FAILED "delivery acknowledgement on channel N timed out"), and
 * with which timeout; `undefined` for any other close.
 */
export function consumerTimeoutOf(reason: CloseReason): ConsumerTimeout | undefined {
  const message = reason?.message ?? "";
  if ((reason as { code?: unknown } | undefined)?.code !== 406 || !/delivery acknowledgement on channel \d+ timed out/.test(message)) return undefined;
  const used = /Timeout value used: (\d+) ms/.exec(message);
  return { timeoutMs: used ? Number(used[1]) : undefined, message };
}

/**
 * How long the broker may take to answer a consumer's setup (declarations,
 * bindings, consume) before the attempt is given up and started over. A
 * healthy broker answers in milliseconds, a cluster electing a queue leader
 * in seconds; past this, the answer is not coming (an operation whose reply
 * was lost with a connection that never reported closing), and waiting on
 * would leave the consumer stopped without a word.
 */
export const SETUP_LIMIT_MS = 60_000;

/** A consumer's setup got no answer within {@link SETUP_LIMIT_MS}. */
class SetupLimitReached extends Error {
  override readonly name = "SetupLimitReached";
}

/** `work`, or a {@link SetupLimitReached} rejection with `message` once {@link SETUP_LIMIT_MS} have passed. */
function withinLimit<T>(work: Promise<T>, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SetupLimitReached(message)), SETUP_LIMIT_MS);
    timer.unref?.();
  });
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}

/** What a {@link KeptConsumer} needs from its owner. */
export interface ConsumerSetup<C extends WireChannel> {
  /** Opens a fresh channel (waits for a reconnection in progress). */
  open(): Promise<C>;
  /** Declares what the consumer needs on `channel` and returns the queue to consume. */
  prepare(channel: C): Promise<string>;
  /** Handles one delivery; `null` means the broker cancelled the consumer. */
  deliver(channel: C, msg: Delivery): void;
  /** True once the owning connection is closed for good. */
  connectionClosed(): boolean;
  /**
   * Called once when the broker closed `channel` for a delivery left
   * unacknowledged past its consumer timeout: says what overran, for the log
   * line (e.g. `Calculator.report had run for 6.0 s; 2 other requests were in
   * flight, ...`). Optional.
   */
  overran?(channel: C, timeout: ConsumerTimeout): string;
}

/** A consumer that re-declares and resumes by itself; see the module comment. */
export class KeptConsumer<C extends WireChannel = WireChannel> {
  #channel: C | undefined;
  #consumerTag: string | undefined;
  #queue: string | undefined;
  #closing = false;
  /** Counts start attempts; an attempt that is not the latest installs no consumer. */
  #attempt = 0;

  constructor(
    private readonly what: string,
    private readonly setup: ConsumerSetup<C>,
    private readonly logger: Logger,
  ) {}

  /** The queue being consumed (a server-named queue changes after each resume). */
  get queue(): string {
    return this.#queue ?? "";
  }

  /** True while the consumer is active on an open channel (false while it resumes after a loss, and once closed). */
  get consuming(): boolean {
    return this.#channel !== undefined && !this.#closing;
  }

  /**
   * Starts consuming; rejects when the attempt fails, or when the broker has
   * not answered its declarations and consume within {@link SETUP_LIMIT_MS}
   * (waiting for the connection itself does not count).
   */
  async start(): Promise<void> {
    const channel = await this.setup.open();
    const attempt = ++this.#attempt;
    let installed: boolean;
    try {
      installed = await withinLimit(this.#consumeOn(channel, attempt), `no answer from the broker within ${SETUP_LIMIT_MS / 1000} s while declaring and consuming for ${this.what}`);
    } catch (err) {
      if (this.#attempt === attempt) this.#attempt++; // a setup that still answers later installs nothing
      if (err instanceof SetupLimitReached) void channel.close().catch(() => {}); // the broker answers nothing: a close-ok would not come either
      else await channel.close().catch(() => {});
      throw err;
    }
    if (!installed) return;
    // A close that came before this line (even in the same read as consume-ok) still reaches the listener.
    channel.onClose((reason) => {
      if (this.#channel !== channel || this.#closing) return;
      this.#channel = undefined;
      if (this.setup.connectionClosed()) return; // the connection was closed on purpose: nothing to resume, nothing to warn about
      const timeout = consumerTimeoutOf(reason);
      if (timeout !== undefined) this.#reportTimeout(channel, timeout);
      else this.logger.warn({ subject: this.what, queue: this.#queue, err: reason }, `channel on queue "${this.#queue}" closed${reason ? ` (${reason.message})` : ""}; re-declaring and resuming`);
      void this.#resume();
    });
  }

  /**
   * Declares and consumes on `channel` for start attempt `attempt`. False
   * when the consumer is no longer wanted once consume-ok came: closed
   * meanwhile, or the attempt was given up (its channel is then closed, and
   * anything delivered on it before is left to the broker to redeliver).
   */
  async #consumeOn(channel: C, attempt: number): Promise<boolean> {
    const queue = await this.setup.prepare(channel);
    const consumerTag = await channel.consume(queue, (msg) => {
      if (attempt !== this.#attempt) return; // an attempt given up: its channel is being closed, the broker redelivers
      if (msg !== null) return this.setup.deliver(channel, msg);
      // The broker cancelled the consumer (e.g. the queue was deleted): closing the channel triggers re-declaration.
      this.logger.error({ subject: this.what, queue }, `the broker cancelled the consumer of queue "${queue}" (queue deleted?)`);
      void channel.close().catch(() => {});
    });
    if (this.#closing || attempt !== this.#attempt) {
      // close() ran while this (re)start was under way, or the attempt was given up: do not leave a consumer behind
      // (cancelled first: the channel of an attempt given up may have been closed in vain already).
      await channel.cancel(consumerTag).catch(() => {});
      await channel.close().catch(() => {});
      return false;
    }
    this.#channel = channel;
    this.#consumerTag = consumerTag;
    this.#queue = queue;
    return true;
  }

  /** One line that says what happened, what overran, and what to configure; the resume follows at once. */
  #reportTimeout(channel: C, timeout: ConsumerTimeout): void {
    const limit = timeout.timeoutMs === undefined ? "its consumer_timeout" : `its consumer_timeout (${timeout.timeoutMs} ms)`;
    let what: string | undefined;
    try {
      what = this.setup.overran?.(channel, timeout);
    } catch {
      what = undefined; // a report that fails must not stop the resume
    }
    this.logger.warn(
      { subject: this.what, queue: this.#queue, code: "consumer_timeout", consumerTimeoutMs: timeout.timeoutMs },
      `the broker closed the channel of queue "${this.#queue}": a delivery stayed unacknowledged longer than ${limit}` +
        `${what ? `; ${what}` : ""}. Resuming at once. Raise consumer_timeout in the broker's rabbitmq.conf, or keep handlers shorter ` +
        "(docs/FAILURES.md#long-handlers-and-consumer_timeout)",
    );
  }

  async #resume(): Promise<void> {
    for (let attempt = 1; !this.#closing && !this.setup.connectionClosed(); attempt++) {
      try {
        await this.start();
        logInfo(this.logger, { subject: this.what, queue: this.#queue }, `consuming "${this.#queue}" again`);
        return;
      } catch (err) {
        if (this.setup.connectionClosed()) break;
        const delay = Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
        // While the connection comes back the first attempts are expected to fail: a warning, not an error.
        this.logger.warn({ subject: this.what, queue: this.#queue, err }, `cannot resume (${(err as Error).message}); retrying in ${delay} ms`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Stops new deliveries; in-flight ones may still be acknowledged until {@link close}. */
  async cancel(): Promise<void> {
    this.#closing = true;
    const channel = this.#channel;
    if (channel && this.#consumerTag !== undefined) await channel.cancel(this.#consumerTag).catch(() => {});
  }

  /** Cancels (if not yet) and closes the channel. */
  async close(): Promise<void> {
    await this.cancel();
    const channel = this.#channel;
    this.#channel = undefined;
    if (channel) await channel.close().catch(() => {});
  }
}

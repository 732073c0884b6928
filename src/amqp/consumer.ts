/**
 * Keeps one consumer alive across channel and connection losses: opens a
 * channel, runs the owner's setup (declare, bind, prefetch), consumes, and
 * after an unexpected close starts over at once (then with capped backoff
 * while attempts fail) until closed. A channel the broker closed because a
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

  /** Starts consuming; rejects when the first attempt fails. */
  async start(): Promise<void> {
    const channel = await this.setup.open();
    try {
      const queue = await this.setup.prepare(channel);
      const consumerTag = await channel.consume(queue, (msg) => {
        if (msg !== null) return this.setup.deliver(channel, msg);
        // The broker cancelled the consumer (e.g. the queue was deleted): closing the channel triggers re-declaration.
        this.logger.error({ subject: this.what, queue }, `the broker cancelled the consumer of queue "${queue}" (queue deleted?)`);
        void channel.close().catch(() => {});
      });
      if (this.#closing) {
        // close() ran while this (re)start was under way: do not leave a consumer behind.
        await channel.close().catch(() => {});
        return;
      }
      this.#channel = channel;
      this.#consumerTag = consumerTag;
      this.#queue = queue;
    } catch (err) {
      await channel.close().catch(() => {});
      throw err;
    }
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

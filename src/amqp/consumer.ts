/**
 * Keeps one consumer alive across channel and connection losses: opens a
 * channel, runs the owner's setup (declare, bind, prefetch), consumes, and
 * after an unexpected close starts over with capped backoff until closed.
 */
import { logInfo, type Logger } from "../core/logging.js";
import type { Delivery, WireChannel } from "./channel-source.js";

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
    channel.onClose(() => {
      if (this.#channel !== channel || this.#closing) return;
      this.#channel = undefined;
      if (this.setup.connectionClosed()) return; // the connection was closed on purpose: nothing to resume, nothing to warn about
      this.logger.warn({ subject: this.what, queue: this.#queue }, `channel on queue "${this.#queue}" closed; re-declaring and resuming`);
      void this.#resume();
    });
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

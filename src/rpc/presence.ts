/**
 * Whether anyone serves a queue, so that a call to a service whose queue
 * exists but has no consumer (every server down) fails with `no_server` at
 * once instead of waiting for its whole timeout. The answer comes from a
 * passive queue declare on a channel of its own and is kept per queue:
 * a call reads the cache (a Map lookup); a known answer older than
 * {@link FRESH_MS} is checked again in the background while calls go on, except
 * that a stale "nobody" is checked again before a call is failed with it.
 */
import type { ChannelSource, WireChannel } from "../amqp/channel-source.js";

/** How long an answer is taken as current. */
export const FRESH_MS = 1000;

interface Known {
  /** Consumers on the queue; -1: the queue does not exist or could not be checked (the call goes out; `mandatory` tells). */
  readonly consumers: number;
  readonly at: number;
}

/** The consumer counts of the queues one client calls; see the module comment. */
export class Presence {
  readonly #known = new Map<string, Known>();
  readonly #checking = new Map<string, Promise<number>>();
  #channel: Promise<WireChannel> | undefined;

  constructor(private readonly source: ChannelSource) {}

  /**
   * Consumers on `queue` as far as known without waiting: a number (possibly
   * stale, then refreshed in the background), -1 when the queue is missing or
   * cannot be checked, or `undefined` when nothing current is known (check first).
   */
  known(queue: string, now: number): number | undefined {
    const known = this.#known.get(queue);
    if (known === undefined) return undefined;
    if (now - known.at < FRESH_MS) return known.consumers;
    if (known.consumers === 0) return undefined; // never fail a call on a stale "nobody"
    void this.check(queue);
    return known.consumers;
  }

  /** Checks `queue` now (one check per queue at a time); resolves with its consumers, or -1. Never rejects. */
  check(queue: string): Promise<number> {
    let pending = this.#checking.get(queue);
    if (pending === undefined) {
      pending = this.#ask(queue).finally(() => this.#checking.delete(queue));
      this.#checking.set(queue, pending);
    }
    return pending;
  }

  async #ask(queue: string): Promise<number> {
    let consumers = -1;
    try {
      const channel = await this.#open();
      consumers = (await channel.checkQueue(queue)).consumerCount;
    } catch {
      // A missing queue (404, which also closes the channel), no permission, a lost connection: unknown, the call goes out.
    }
    this.#known.set(queue, { consumers, at: Date.now() });
    return consumers;
  }

  #open(): Promise<WireChannel> {
    this.#channel ??= this.source.open("plain").then(
      (channel) => {
        channel.onClose(() => (this.#channel = undefined));
        return channel;
      },
      (err: unknown) => {
        this.#channel = undefined;
        throw err;
      },
    );
    return this.#channel;
  }

  /** Closes the checking channel. */
  async close(): Promise<void> {
    const channel = this.#channel;
    this.#channel = undefined;
    if (channel !== undefined) await (await channel.catch(() => undefined))?.close();
  }
}

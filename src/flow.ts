/**
 * Publish flow control: a publisher waits while its socket buffer is full
 * (amqplib's `publish` returned false, until the channel's "drain") or while
 * the broker blocks the connection for a resource alarm (until "unblocked"),
 * instead of piling messages up in memory.
 */
import type { EventEmitter } from "node:events";
import type { Connection } from "./connection.js";

/** Flow control for the publishes of one client or event bus. */
export class FlowControl {
  #drained: Promise<void> | undefined;
  #unblocked: Promise<void> | undefined;

  constructor(private readonly connection: Connection) {}

  /** True when a publish may go out now, without waiting. */
  get open(): boolean {
    return this.#drained === undefined && !this.connection.blocked;
  }

  /** Resolves once publishing may go on: socket drained (or its channel closed) and the connection not blocked (or lost). */
  async wait(): Promise<void> {
    while (!this.open) {
      if (this.#drained !== undefined) await this.#drained;
      if (this.connection.blocked) {
        this.#unblocked ??= firstOf(this.connection, ["unblocked", "disconnected"]).finally(() => (this.#unblocked = undefined));
        await this.#unblocked;
      }
    }
  }

  /** Records what `publish` returned on `channel`: false makes later publishes wait for its "drain" (or "close"). */
  published(channel: EventEmitter, flushed: boolean): void {
    if (!flushed && this.#drained === undefined) {
      this.#drained = firstOf(channel, ["drain", "close"]).finally(() => (this.#drained = undefined));
    }
  }
}

/** Resolves on the first of `events`, leaving no listener behind. */
function firstOf(emitter: EventEmitter, events: readonly string[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      for (const e of events) emitter.off(e, done);
      resolve();
    };
    for (const e of events) emitter.on(e, done);
  });
}

/**
 * Publish flow control: a publisher waits while its socket buffer is full
 * (`publish` returned false, until the channel drains) or while the broker
 * blocks the connection for a resource alarm (until it unblocks), instead of
 * piling messages up in memory.
 */
import type { ChannelSource, WireChannel } from "./channel-source.js";

/** Flow control for the publishes of one client or event bus. */
export class FlowControl {
  #drained: Promise<void> | undefined;
  #unblocked: Promise<void> | undefined;

  constructor(private readonly source: ChannelSource) {}

  /** True when a publish may go out now, without waiting. */
  get open(): boolean {
    return this.#drained === undefined && !this.source.blocked;
  }

  /** Resolves once publishing may go on: socket drained (or its channel closed) and the connection not blocked (or lost). */
  async wait(): Promise<void> {
    while (!this.open) {
      if (this.#drained !== undefined) await this.#drained;
      if (this.source.blocked) {
        this.#unblocked ??= this.source.unblocked().finally(() => (this.#unblocked = undefined));
        await this.#unblocked;
      }
    }
  }

  /** Records what `publish` returned on `channel`: false makes later publishes wait until it drains (or closes). */
  published(channel: WireChannel, flushed: boolean): void {
    if (!flushed && this.#drained === undefined) {
      this.#drained = channel.drained().finally(() => (this.#drained = undefined));
    }
  }
}

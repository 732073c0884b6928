/**
 * {@link WireChannel} over an amqplib channel. The close listener is attached
 * the moment the channel exists, before any other operation: amqplib emits
 * `close` synchronously while it reads frames, so a listener attached after
 * an `await` (say, of `consume`) misses a close that arrived in the same TCP
 * read as the operation's reply. A close that came even before that (in the
 * read that completed the channel's creation) is read off amqplib's channel
 * table. Here `closed` and `onClose` cannot miss it.
 *
 * Between `close()` (the channel's or its connection's) and the close itself
 * (close-ok), amqplib refuses to send with an `IllegalOperationError` while
 * the channel still looks open; a publish it refuses so marks the channel
 * closed at once, so that whoever published knows the message can go out on
 * the next channel only. The `onClose` listeners run when the close comes.
 */
import { IllegalOperationError, type Channel } from "amqplib";
import { NackError, type AckTarget, type CloseReason, type Delivery, type MessageProperties, type QueueOptions, type Returned, type WireChannel } from "./channel-source.js";
import { closedAlready, publishConfirmedMessage, publishMessage } from "./internals.js";

/** An amqplib channel (plain or confirm) behind the {@link WireChannel} interface. */
export class AmqpChannel implements WireChannel {
  #closed = false;
  /** A publish failed because the close of the channel or its connection is under way: it can send nothing more. */
  #closing = false;
  #reason: CloseReason;
  #listeners: ((reason: CloseReason) => void)[] = [];

  /** Wraps `channel` right after amqplib created it; see the module comment. */
  constructor(readonly raw: Channel) {
    // It may have closed before this line: amqplib can close it in the same socket read that completed its creation.
    this.#closed = closedAlready(raw);
    // amqplib emits "error" before "close" for a channel the broker closed; the close carries it on.
    raw.on("error", (err: Error) => (this.#reason = err));
    raw.once("close", () => {
      this.#closed = true;
      const listeners = this.#listeners;
      this.#listeners = [];
      for (const listener of listeners) listener(this.#reason);
    });
  }

  get closed(): boolean {
    return this.#closed || this.#closing;
  }

  onClose(listener: (reason: CloseReason) => void): void {
    if (this.#closed) queueMicrotask(() => listener(this.#reason));
    else this.#listeners.push(listener);
  }

  onReturn(listener: (msg: Returned) => void): void {
    this.raw.on("return", listener);
  }

  drained(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.raw.off("drain", done);
        resolve();
      };
      this.raw.on("drain", done);
      this.onClose(done);
    });
  }

  publish(exchange: string, routingKey: string, content: Buffer, props: MessageProperties, mandatory = false): boolean {
    try {
      return publishMessage(this.raw, exchange, routingKey, content, props, mandatory);
    } catch (err) {
      throw this.#refused(err);
    }
  }

  publishConfirmed(exchange: string, routingKey: string, content: Buffer, props: MessageProperties, confirmed: (err: Error | null) => void): boolean {
    try {
      // amqplib reports a nack and a channel closed with unconfirmed messages both as an Error; only the nack says "nacked".
      // A channel the broker closed (403 for a publish it refused) is reported with the broker's reason.
      return publishConfirmedMessage(this.raw, exchange, routingKey, content, props, (err) =>
        confirmed(err == null ? null : err.message === "message nacked" ? new NackError() : (this.#reason ?? err)),
      );
    } catch (err) {
      throw this.#refused(err);
    }
  }

  /** What a publish threw; amqplib's refusal to send on a closing channel (or connection) marks it closed. */
  #refused(err: unknown): unknown {
    if (err instanceof IllegalOperationError) this.#closing = true;
    return err;
  }

  async consume(queue: string, deliver: (msg: Delivery | null) => void, options: { noAck?: boolean } = {}): Promise<string> {
    return (await this.raw.consume(queue, deliver, options)).consumerTag;
  }

  async cancel(consumerTag: string): Promise<void> {
    await this.raw.cancel(consumerTag);
  }

  ack(target: AckTarget, multiple = false): void {
    try {
      this.raw.ack(target as Parameters<Channel["ack"]>[0], multiple);
    } catch {
      // The channel is closed: the broker requeues every unacked delivery; nothing to do here.
    }
  }

  async prefetch(count: number): Promise<void> {
    await this.raw.prefetch(count);
  }

  async declareQueue(name: string, options: QueueOptions): Promise<string> {
    return (await this.raw.assertQueue(name, options)).queue;
  }

  async checkQueue(name: string): Promise<{ messageCount: number; consumerCount: number }> {
    const { messageCount, consumerCount } = await this.raw.checkQueue(name);
    return { messageCount, consumerCount };
  }

  async declareExchange(name: string, type: string, options: { durable: boolean }): Promise<void> {
    await this.raw.assertExchange(name, type, options);
  }

  async bindQueue(queue: string, exchange: string, key: string): Promise<void> {
    await this.raw.bindQueue(queue, exchange, key);
  }

  async unbindQueue(queue: string, exchange: string, key: string): Promise<void> {
    await this.raw.unbindQueue(queue, exchange, key);
  }

  async get(queue: string): Promise<Delivery | undefined> {
    const msg = await this.raw.get(queue, { noAck: false });
    return msg === false ? undefined : (msg as unknown as Delivery);
  }

  /**
   * Closes the channel; settles once it is closed, however that came about.
   * amqplib's `close()` settles only on the broker's close-ok: when the
   * connection is lost after the close was sent, it stays pending forever
   * (the channel's `close` event still comes), so the close event settles it
   * too. A refusal (closed meanwhile by the broker or a lost connection) is
   * the same outcome.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    await new Promise<void>((resolve) => {
      this.onClose(() => resolve());
      this.raw.close().then(resolve, () => resolve());
    });
  }
}

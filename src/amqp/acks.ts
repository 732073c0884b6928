/**
 * Acknowledgements in batches. A server acks each request after its reply is
 * published; when several requests finish in one turn of the event loop (the
 * usual case under load: deliveries arrive in bursts), one `basic.ack` with
 * `multiple` covers the contiguous run of finished delivery tags instead of
 * one frame each. Nothing waits for a timer: the batch is sent at the end of
 * the current tick, before amqplib writes to the socket, so an ack is never
 * later than the reply it follows by more than that.
 */
import type { AckTarget, WireChannel } from "./channel-source.js";

/** Batches the acks of one channel; delivery tags are per channel, so one batcher per channel. */
export class AckBatcher {
  /** Delivered, not yet acked, in delivery order (tags increase on a channel). */
  #outstanding: number[] = [];
  #head = 0;
  /** Finished, waiting for the end of the tick. */
  readonly #done = new Set<number>();
  #scheduled = false;
  readonly #flush = () => this.flush();

  constructor(private readonly channel: WireChannel) {}

  /** Records a delivery; every delivery must later be {@link done} exactly once (or its channel closes). */
  delivered(tag: number): void {
    this.#outstanding.push(tag);
  }

  /**
   * The request with `tag` is finished (replied to, or dropped on purpose): ack it by the
   * end of this tick. `msg`, the delivery itself, saves building a message to ack it alone.
   */
  done(tag: number, msg?: AckTarget): void {
    if (this.#outstanding.length - this.#head === 1 && !this.#scheduled) {
      // The only delivery in flight: nothing to batch it with (the usual case at one call at a time).
      this.#outstanding.length = 0;
      this.#head = 0;
      this.#ack(msg ?? tagOnly(tag), false);
      return;
    }
    this.#done.add(tag);
    if (!this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(this.#flush);
    }
  }

  /**
   * Acks what is finished: the finished prefix of the outstanding tags with
   * one `multiple` ack, each finished tag behind an unfinished one on its own
   * (a slow request never holds back the acks of fast ones).
   */
  flush(): void {
    this.#scheduled = false;
    const done = this.#done;
    if (done.size === 0) return;
    let outstanding = this.#outstanding;
    let head = this.#head;
    let upTo = -1;
    while (head < outstanding.length && done.delete(outstanding[head]!)) upTo = outstanding[head++]!;
    const stragglers = done.size > 0 ? new Set(done) : undefined;
    done.clear();
    if (stragglers !== undefined) {
      outstanding = outstanding.slice(head).filter((t) => !stragglers.has(t));
      head = 0;
    } else if (head === outstanding.length) {
      outstanding.length = 0;
      head = 0;
    } else if (head > 1024) {
      outstanding = outstanding.slice(head);
      head = 0;
    }
    this.#outstanding = outstanding;
    this.#head = head;
    if (upTo >= 0) this.#ack(tagOnly(upTo), true);
    if (stragglers !== undefined) for (const tag of stragglers) this.#ack(tagOnly(tag), false);
  }

  #ack(target: AckTarget, multiple: boolean): void {
    // On a closed channel this does nothing: the broker requeues every unacked delivery.
    this.channel.ack(target, multiple);
  }
}

/** A target carrying only `deliveryTag`, which is all an ack reads. */
function tagOnly(deliveryTag: number): AckTarget {
  return { fields: { deliveryTag } };
}

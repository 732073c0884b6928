/**
 * Acknowledgements in batches. A server acks each request after its reply is
 * published; when several requests finish in one turn of the event loop (the
 * usual case under load: deliveries arrive in bursts), one `basic.ack` with
 * `multiple` covers the contiguous run of finished delivery tags instead of
 * one frame each. By default nothing waits for a timer: the batch is sent at
 * the end of the current tick, before amqplib writes to the socket, so an ack
 * is never later than the reply it follows by more than that.
 *
 * A batcher may also *hold* finished acks (event subscriptions do, see
 * {@link AckHold}): then they go out once `count` are finished or `delayMs`
 * after the first of them, whichever comes first. An event subscriber's ack is
 * the only frame it sends per event; holding turns one write per event into
 * one per batch for the subscriber and the broker alike, at the price of a
 * handled event being redelivered if the channel is lost before its ack left.
 */
import type { AckTarget, WireChannel } from "./channel-source.js";

/** How long finished acks may be held back to go out together. */
export interface AckHold {
  /** Send once this many are finished (≤ 1: no holding, every turn's acks go at its end). */
  readonly count: number;
  /** Send at the latest this long after the first held ack finished. */
  readonly delayMs: number;
}

/** Batches the acks of one channel; delivery tags are per channel, so one batcher per channel. */
export class AckBatcher<M extends AckTarget = AckTarget> {
  /** Delivered, not yet acked, in delivery order (tags increase on a channel). */
  #outstanding: number[] = [];
  #head = 0;
  /** Finished, not acked yet: tag → the delivery when the caller gave it. */
  readonly #done = new Map<number, M | undefined>();
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;
  #discarded = false;
  readonly #flush = () => this.flush();
  readonly #holdCount: number;
  readonly #holdMs: number;

  constructor(
    private readonly channel: WireChannel,
    hold?: AckHold,
  ) {
    this.#holdCount = hold === undefined || hold.delayMs <= 0 ? 1 : Math.max(1, Math.floor(hold.count));
    this.#holdMs = hold?.delayMs ?? 0;
  }

  /** Records a delivery; every delivery must later be {@link done} exactly once (or its channel closes). */
  delivered(tag: number): void {
    this.#outstanding.push(tag);
  }

  /**
   * The delivery with `tag` is finished (replied to, handled, or dropped on
   * purpose): ack it by the end of this tick, or, when holding, with the next
   * batch. `msg`, the delivery itself, saves building a message to ack it
   * alone and is what {@link discard} returns.
   */
  done(tag: number, msg?: M): void {
    if (this.#discarded) return; // the channel is gone: the broker delivers it again
    if (this.#holdCount > 1) {
      this.#done.set(tag, msg);
      if (this.#done.size >= this.#holdCount) this.#flushAtTickEnd();
      else if (this.#timer === undefined && !this.#scheduled) {
        this.#timer = setTimeout(this.#flush, this.#holdMs);
        this.#timer.unref?.();
      }
      return;
    }
    if (this.#outstanding.length - this.#head === 1 && !this.#scheduled) {
      // The only delivery in flight: nothing to batch it with (the usual case at one call at a time).
      this.#outstanding.length = 0;
      this.#head = 0;
      this.#ack(msg ?? tagOnly(tag), false);
      return;
    }
    this.#done.set(tag, msg);
    this.#flushAtTickEnd();
  }

  #flushAtTickEnd(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    process.nextTick(this.#flush);
  }

  /**
   * Acks what is finished: the finished prefix of the outstanding tags with
   * one `multiple` ack, each finished tag behind an unfinished one on its own
   * (a slow delivery never holds back the acks of fast ones).
   */
  flush(): void {
    this.#scheduled = false;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const done = this.#done;
    if (done.size === 0) return;
    let outstanding = this.#outstanding;
    let head = this.#head;
    let upTo = -1;
    while (head < outstanding.length && done.delete(outstanding[head]!)) upTo = outstanding[head++]!;
    const stragglers = done.size > 0 ? [...done.keys()] : undefined;
    done.clear();
    if (stragglers !== undefined) {
      const acked = new Set(stragglers);
      outstanding = outstanding.slice(head).filter((t) => !acked.has(t));
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

  /**
   * The channel is gone: forgets everything and returns the deliveries that
   * were finished but not acknowledged (given to {@link done}), which the
   * broker will deliver again.
   */
  discard(): M[] {
    this.#discarded = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const finished: M[] = [];
    for (const msg of this.#done.values()) if (msg !== undefined) finished.push(msg);
    this.#done.clear();
    this.#outstanding = [];
    this.#head = 0;
    return finished;
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

/**
 * Deadlines of many pending calls without a timer each. Calls with the same
 * timeout expire in the order they were added, so each distinct timeout gets
 * one doubly linked list (oldest first) and one timer for its head; adding is
 * an append and removing an unlink, with no timer created or cleared per call
 * (a Node timer costs a few hundred nanoseconds and ~200 bytes). The links
 * live on the items themselves. This is how Node groups its own timers,
 * minus the per-call Timeout object.
 */

/** Something with a deadline; the link fields belong to {@link Deadlines}. */
export interface Expiring {
  /** Called once, when the deadline has passed (unless removed first). */
  expire(): void;
  /** Absolute deadline, ms since the epoch. */
  readonly deadline: number;
  /** @internal */ deadlinePrev: Expiring | undefined;
  /** @internal */ deadlineNext: Expiring | undefined;
  /** @internal */ deadlineList: DeadlineList | undefined;
}

/** The items sharing one timeout, oldest first, and the timer for the head. */
interface DeadlineList {
  readonly timeoutMs: number;
  head: Expiring | undefined;
  tail: Expiring | undefined;
  timer: NodeJS.Timeout | undefined;
  /** When the timer fires. */
  timerAt: number;
}

/** The deadlines of one client; see the module comment. */
export class Deadlines<T extends Expiring> {
  readonly #lists = new Map<number, DeadlineList>();

  /** Number of registered items (walks the lists: for tests and diagnostics). */
  get size(): number {
    let n = 0;
    for (const list of this.#lists.values()) for (let item = list.head; item !== undefined; item = item.deadlineNext) n++;
    return n;
  }

  /**
   * Registers `item`, whose deadline must be `timeoutMs` after now (so each list
   * stays in deadline order); it expires at or after `item.deadline`.
   */
  add(item: T, timeoutMs: number): void {
    let list = this.#lists.get(timeoutMs);
    if (list === undefined) {
      list = { timeoutMs, head: undefined, tail: undefined, timer: undefined, timerAt: Infinity };
      this.#lists.set(timeoutMs, list);
    }
    item.deadlineList = list;
    item.deadlinePrev = list.tail;
    item.deadlineNext = undefined;
    if (list.tail === undefined) list.head = item;
    else list.tail.deadlineNext = item;
    list.tail = item;
    // Deadlines in one list only grow (unless the wall clock steps back); arm when the list has no timer.
    if (list.timer === undefined || item.deadline < list.timerAt) this.#arm(list, item.deadline);
  }

  /** Removes `item`; it will not expire. A no-op if it is not registered. */
  delete(item: T): void {
    const list = item.deadlineList;
    if (list === undefined) return;
    const { deadlinePrev: prev, deadlineNext: next } = item;
    if (prev === undefined) list.head = next;
    else prev.deadlineNext = next;
    if (next === undefined) list.tail = prev;
    else next.deadlinePrev = prev;
    item.deadlineList = item.deadlinePrev = item.deadlineNext = undefined;
    // The timer stays: it fires for the old head, finds nothing due and re-arms (or stops) then.
  }

  /** Removes everything and stops the timers. */
  clear(): void {
    for (const list of this.#lists.values()) {
      clearTimeout(list.timer);
      for (let item = list.head; item !== undefined; ) {
        const next = item.deadlineNext;
        item.deadlineList = item.deadlinePrev = item.deadlineNext = undefined;
        item = next;
      }
    }
    this.#lists.clear();
  }

  #arm(list: DeadlineList, at: number): void {
    clearTimeout(list.timer);
    list.timerAt = at;
    // Unref'd: a pending call must not keep a process alive on its own (its connection does while it is open).
    list.timer = setTimeout(() => this.#expireDue(list), Math.max(0, at - Date.now())).unref();
  }

  #expireDue(list: DeadlineList): void {
    list.timer = undefined;
    list.timerAt = Infinity;
    const now = Date.now();
    const due: Expiring[] = [];
    while (list.head !== undefined && list.head.deadline <= now) {
      due.push(list.head);
      this.delete(list.head as T);
    }
    if (list.head !== undefined) this.#arm(list, list.head.deadline);
    else if (this.#lists.get(list.timeoutMs) === list) this.#lists.delete(list.timeoutMs);
    for (const item of due) item.expire();
  }
}

/**
 * The caller side: an {@link RpcTransport} over a reply channel (replaced when
 * it closes or stops answering). Requests go to the service's queue with
 * `mandatory` set; replies come back on direct reply-to (or an exclusive
 * callback queue) and are matched by correlation id.
 */
import type { ChannelSource, Delivery, Returned, WireChannel } from "../amqp/channel-source.js";
import { FlowControl } from "../amqp/flow.js";
import { RETRYABLE_CODES } from "../core/codes.js";
import type { ErrorShape, MethodDescriptor, ServiceDescriptor } from "../core/descriptor.js";
import { RpcError, ValidationError, describeTarget } from "../core/errors.js";
import { callTimeout, resolveClientOptions, type ClientOptions as BaseClientOptions, type ResolvedClientOptions } from "../core/options.js";
import {
  CONTENT_TYPE,
  CONTRACT_VERSION_HEADER,
  DEADLINE_HEADER,
  DIRECT_REPLY_TO,
  ERROR_TYPE,
  RESULT_TYPE,
  decodeBody,
  isReplyCode,
  toErrorBody,
  tryEncodeBody,
} from "../core/protocol.js";
import { inherit, type Parent } from "../core/parent.js";
import { ambientParent, inheritedTrace } from "../core/trace.js";
import { Invalid, checksFor } from "../core/validation.js";
import { Call, CallTable, canceled, targetOf, type Route } from "./call-table.js";
import { compose, type CallNext, type ClientInterceptor, type OutgoingCall } from "./interceptors.js";
import { Presence } from "./presence.js";
import type { CallOptions, RpcTransport } from "./transport.js";

/** What {@link RpcClient.health} reports. */
export interface ClientHealth {
  /** True when calls can go out now: the client is open and its reply channel is up. */
  readonly ok: boolean;
  /** The reply channel is open on a live connection. */
  readonly connected: boolean;
  /** The client was closed. */
  readonly closed: boolean;
  /** Calls awaiting a reply. */
  readonly inFlight: number;
  /** The broker's resource alarm is pausing publishes. */
  readonly blocked: boolean;
}

/** Options of an {@link RpcClient}. */
export interface ClientOptions extends BaseClientOptions {
  /** Run around every call, the first outermost; see {@link ClientInterceptor}. @default none */
  interceptors?: readonly ClientInterceptor[];
}

/** The client's reply channel while it is being opened (`opening`) and once open (`open` too, for the synchronous fast path). */
interface ReplySlot extends Route {
  opening: Promise<ReplyChannel>;
  open: ReplyChannel | undefined;
  /** No longer used for new calls (it stopped answering): closed once its last call settles. */
  retired: boolean;
}

interface ReplyChannel {
  readonly channel: WireChannel;
  readonly replyTo: string;
}

/** Calls in a row that time out with no reply at all before the client replaces its reply channel; see `RpcClient#timedOut`. */
const STALE_AFTER_TIMEOUTS = 3;

/** The options of a call made without any: shared, never written. */
const NO_OPTIONS: CallOptions = Object.freeze({});

/**
 * Calls services on one connection. Pass it to generated client stubs:
 * `new CalculatorClient(await conn.client())`. Safe for any number of
 * concurrent calls; create one per process and reuse it.
 */
export class RpcClient implements RpcTransport {
  readonly #source: ChannelSource;
  readonly #options: ResolvedClientOptions;
  readonly #calls = new CallTable(
    (call, err) => this.#retry(call, err),
    (call) => this.#timedOut(call),
  );
  /** Calls timed out since the last reply or return on the reply channel. */
  #silentTimeouts = 0;
  /** The reply channel new calls go out on, held once: being opened, or open. */
  #reply: ReplySlot | undefined;
  /** Reply channels retired for answering nothing, open until their last call settles. */
  readonly #retired = new Set<ReplySlot>();
  readonly #flow: FlowControl;
  /** Whether anyone consumes the queues this client calls (src/rpc/presence.ts). */
  readonly #presence: Presence;
  /** The interceptors around {@link RpcClient.#call}, composed once; `undefined` without interceptors. */
  readonly #chain: CallNext | undefined;
  #closed = false;

  /** @internal use `connection.client(options)`. */
  constructor(source: ChannelSource, options: ClientOptions = {}) {
    this.#source = source;
    const { interceptors, ...base } = options;
    this.#options = resolveClientOptions(base, source.logger);
    this.#flow = new FlowControl(source);
    this.#presence = new Presence(source);
    if (interceptors !== undefined && interceptors.length > 0) {
      this.#chain = compose<CallNext>(interceptors, (call) => this.#call(call.method, call.request, { ...call.options, headers: call.headers }, call.startedAt, call));
    }
  }

  /** Compiles the validators of every method of `service` now, so that no call pays for it; generated clients call this when they are created. */
  prepare(service: ServiceDescriptor): void {
    for (const method of Object.values(service.methods)) checksFor(method);
  }

  /** Resolves once the reply consumer is active; rejects if it cannot be set up. */
  async ready(): Promise<void> {
    await this.#replyChannel();
  }

  /** Number of calls awaiting a reply. */
  get pendingCount(): number {
    return this.#calls.size;
  }

  /**
   * The client's state for a readiness probe; cheap, no I/O. `connected`:
   * its reply channel is open (calls go out at once; while it is not, calls
   * wait for the connection within their deadline). Not ok once closed.
   */
  health(): ClientHealth {
    const connected = !this.#closed && !this.#source.closed && this.#reply?.open !== undefined && !this.#reply.open.channel.closed;
    return { ok: connected, connected, closed: this.#closed, inFlight: this.#calls.size, blocked: this.#source.blocked };
  }

  /**
   * Performs one call; see {@link RpcTransport.call} for what a caller can rely on.
   * Methods the contract declares `idempotent` are retried after `connection_lost`
   * while their deadline allows (not after `no_server`: that answer must stay fast).
   */
  call<Req, Res, Err extends ErrorShape>(method: MethodDescriptor<Req, Res, Err>, request: Req, options: CallOptions = NO_OPTIONS): Promise<Res> {
    const now = Date.now();
    const parent = options.parent === undefined ? ambientParent() : options.parent;
    if (parent != null) {
      try {
        options = this.#inherit(method, options, parent, now);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.#chain === undefined) return this.#call(method, request, options, now) as Promise<Res>;
    const call: OutgoingCall = { method, request, options, headers: { ...options.headers }, startedAt: now };
    const target = targetOf(method);
    let budget: number;
    try {
      budget = callTimeout(options.timeoutMs, method.timeoutMs, this.#options.timeoutMs);
    } catch (err) {
      return Promise.reject(new RpcError("invalid_request", `${describeTarget(target)}: ${(err as Error).message}`, { ...target, cause: err }));
    }
    let outcome: Promise<unknown>;
    try {
      outcome = this.#chain(call);
    } catch (err) {
      outcome = Promise.reject(err);
    }
    // The deadline and the signal hold while interceptors run too: a slow or stuck interceptor cannot keep the caller waiting past them.
    return new Promise<unknown>((resolve, reject) => {
      const signal = options.signal;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const timer = setTimeout(() => {
        done();
        reject(new RpcError("timeout", `${describeTarget(target)}: no reply within ${budget} ms`, target));
      }, Math.max(0, call.startedAt + budget - Date.now()));
      const onAbort = () => {
        done();
        reject(canceled(target, signal!));
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
      outcome.then(
        (value) => (done(), resolve(value)),
        (err: unknown) => {
          done();
          reject(err instanceof RpcError ? err : new RpcError("internal", `${describeTarget(target)}: a client interceptor failed: ${(err as Error)?.message ?? String(err)}`, { ...target, cause: err }));
        },
      );
    }) as Promise<Res>;
  }

  /** `options` with the budget and signal a call made at `now` for `parent` gets (src/core/parent.ts): due at the parent's deadline at the latest; throws when the parent is done with. */
  #inherit(method: MethodDescriptor<any, any, any>, options: CallOptions, parent: Parent, now: number): CallOptions {
    let own: number;
    try {
      own = callTimeout(options.timeoutMs, method.timeoutMs, this.#options.timeoutMs);
    } catch {
      return options; // a bad timeoutMs is reported where every call's is
    }
    const { timeoutMs, signal } = inherit(parent, targetOf(method), own, options.signal, now);
    return signal === undefined ? { ...options, timeoutMs, parent: null } : { ...options, timeoutMs, signal, parent: null };
  }

  /** One call past the interceptors (`outgoing`: what they saw); its budget runs from `startedAt`. */
  #call(method: MethodDescriptor<any, any, any>, request: unknown, options: CallOptions, startedAt: number, outgoing?: OutgoingCall): Promise<unknown> {
    let first: Call;
    try {
      first = this.#prepare(method, request, options, startedAt);
    } catch (err) {
      return Promise.reject(err);
    }
    first.outgoing = outgoing;
    const outcome = new Promise<unknown>((resolve, reject) => {
      first.resolve = resolve;
      first.reject = reject;
    });
    if (!(options.waitForServer ?? this.#options.waitForServer)) {
      const consumers = this.#presence.known(first.queue, startedAt);
      if (consumers === 0) {
        first.reject(noConsumer(first));
        return outcome;
      }
      if (consumers === undefined) {
        // Not known yet (the first call to this queue in a while): ask the broker before publishing, so that "nothing ran" holds.
        // The reply channel opens meanwhile (first: the check's channel is the client's second).
        void this.#replyChannel().catch(() => {});
        void this.#presence.check(first.queue).then((count) => {
          // Not in the call table yet, so an abort meanwhile has no listener: look.
          if (options.signal?.aborted) first.reject(canceled(first.target, options.signal));
          else if (count === 0) first.reject(noConsumer(first));
          else this.#begin(first);
        });
        return outcome;
      }
    }
    this.#begin(first);
    return outcome;
  }

  /** Registers and publishes the first attempt of a call. */
  #begin(first: Call): void {
    // Calls with one timeout share a deadline list (src/rpc/deadlines.ts); one whose interceptors took a while has less left.
    const due = first.deadline - Date.now();
    this.#start(first, due >= first.timeoutMs - 1 ? first.timeoutMs : Math.max(0, due));
  }

  /** Checks and encodes a call made at `now`; throws what the caller should see. */
  #prepare(method: MethodDescriptor<any, any, any>, request: unknown, options: CallOptions, now: number): Call {
    // The budget runs from the moment of the call, whatever the interceptors and the checks below cost (docs/PROTOCOL.md).
    if (this.#closed) throw new RpcError("canceled", `${describeTarget(targetOf(method))}: the client is closed`, targetOf(method));
    if (options.signal?.aborted) throw canceled(targetOf(method), options.signal);
    let timeoutMs: number;
    try {
      timeoutMs = callTimeout(options.timeoutMs, method.timeoutMs, this.#options.timeoutMs);
    } catch (err) {
      throw new RpcError("invalid_request", `${describeTarget(targetOf(method))}: ${(err as Error).message}`, { ...targetOf(method), cause: err });
    }
    const checks = checksFor(method);
    const issues = checks.request(request);
    if (issues !== undefined) throw new ValidationError("invalid_request", "client", issues, targetOf(method));
    const encoded = tryEncodeBody(request);
    if (!encoded.ok) throw new RpcError("invalid_request", `${describeTarget(targetOf(method))}: the request ${encoded.reason}`, targetOf(method));
    const key = options.idempotencyKey;
    if (key !== undefined && !isIdempotencyKey(key)) {
      throw new RpcError("invalid_request", `${describeTarget(targetOf(method))}: idempotencyKey must be a non-empty string of at most ${MAX_KEY_BYTES} bytes`, targetOf(method));
    }
    const queue = this.#options.queues[method.service.name] ?? method.service.queue;
    const call = new Call(this.#calls, method, checks, queue, "", encoded.body, now + timeoutMs, timeoutMs, options);
    this.#calls.assignId(call);
    // Kept on the call: a retry gets a new correlation id but the same message_id.
    call.idempotencyKey = key ?? call.correlationId;
    return call;
  }

  /**
   * After a failed attempt: an idempotent call is tried again after `connection_lost`
   * (new correlation id, capped backoff, same deadline and promise) while its deadline
   * allows. Returns whether it will be.
   */
  #retry(call: Call, err: RpcError): boolean {
    // Of the retryable codes, only connection_lost can recur with budget left: a timeout has used it up, and no_server must stay a fast answer.
    if (call.method.idempotent !== true || err.code === "no_server" || !RETRYABLE_CODES.has(err.code) || this.#closed) return false;
    const delay = Math.min(1000, 25 * 2 ** call.attempt);
    if (Date.now() + delay >= call.deadline) return false;
    call.attempt++;
    setTimeout(() => {
      // Settled meanwhile: the caller aborted, or the client was closed (the call table settles waiting calls too).
      if (call.state !== "retrying") return;
      const signal = call.options.signal;
      if (this.#closed) {
        if (this.#calls.abandon(call)) call.reject(new RpcError("canceled", `${describeTarget(call.target)}: the client was closed`, call.target));
      } else if (signal?.aborted) {
        if (this.#calls.abandon(call)) call.reject(canceled(call.target, signal));
      } else {
        this.#calls.assignId(call);
        // The retry keeps the first attempt's deadline: it is due in what remains of the budget.
        this.#start(call, Math.max(0, call.deadline - Date.now()));
      }
    }, delay);
    return true;
  }

  /**
   * A channel can go stale while its connection stays up: after a cluster node
   * dies, a channel opened during the quorum leader election may swallow every
   * request it publishes, while a channel opened later works. So when
   * {@link STALE_AFTER_TIMEOUTS} calls published on the current reply channel
   * time out in a row, with not one reply or return in between, that channel is
   * retired: new calls go out on a fresh one, and the old one stays open for
   * the replies of its calls until the last of them settles. Costs nothing per
   * call: a counter that each reply resets.
   */
  #timedOut(call: Call): void {
    const slot = this.#reply;
    if (slot === undefined || call.route !== slot || ++this.#silentTimeouts < STALE_AFTER_TIMEOUTS) return;
    this.#silentTimeouts = 0;
    if (this.#source.blocked || this.#closed) return;
    this.#options.logger.warn({}, `client: ${STALE_AFTER_TIMEOUTS} calls in a row timed out without a single reply; new calls go out on a fresh channel`);
    this.#reply = undefined;
    slot.retired = true;
    this.#retired.add(slot);
  }

  /** Registers `call` (pending, deadline `dueInMs` from now, abort) and publishes it, now or once the channel accepts publishes. */
  #start(call: Call, dueInMs: number): void {
    this.#calls.add(call, dueInMs);
    // Fast path: publish now when the channel is open and nothing asks us to wait.
    const slot = this.#reply;
    if (slot?.open !== undefined && this.#flow.open) this.#publish(call, slot);
    else {
      const attempt = call.attempt;
      const current = () => call.state === "pending" && call.attempt === attempt; // not settled or retried meanwhile
      this.#writable().then(
        (ready) => current() && this.#publish(call, ready),
        (err: unknown) => current() && call.fail(asConnectionLost(err, call.target)),
      );
    }
  }

  #publish(call: Call, slot: ReplySlot): void {
    const { channel, replyTo } = slot.open!;
    const now = Date.now();
    const deadline = call.deadline;
    const extra = call.options.headers;
    const trace = inheritedTrace(extra);
    try {
      const props = {
        contentType: CONTENT_TYPE,
        correlationId: call.correlationId,
        // The idempotency key: a standard property, cheaper on the hot path than a header table entry.
        messageId: call.idempotencyKey,

        replyTo,
        type: call.method.name,
        expiration: String(Math.max(1, deadline - now)),
        timestamp: Math.floor(now / 1000),
        // Few headers: amqplib encodes (and the server decodes) every table entry on the hot path.
        headers:
          extra === undefined && trace === undefined
            ? { [DEADLINE_HEADER]: deadline, [CONTRACT_VERSION_HEADER]: call.method.service.version }
            : { ...trace, ...extra, [DEADLINE_HEADER]: deadline, [CONTRACT_VERSION_HEADER]: call.method.service.version },
      };
      const flushed = channel.publish("", call.queue, call.body!, props, true);
      this.#calls.published(call, slot);
      if (call.outgoing !== undefined) {
        call.outgoing.correlationId = call.correlationId;
        call.outgoing.idempotencyKey = call.idempotencyKey;
      }
      if (call.method.idempotent !== true) call.body = undefined;
      // Back-pressure: once the socket buffer is full, later calls wait for "drain" instead of piling up.
      this.#flow.published(channel, flushed);
    } catch (err) {
      call.fail(new RpcError("connection_lost", `${describeTarget(call.target)}: could not publish: ${(err as Error).message}`, { ...call.target, cause: err }));
    }
  }

  /** The reply channel once it accepts publishes: connected, not blocked by a broker alarm, socket drained. */
  async #writable(): Promise<ReplySlot> {
    const slot = await this.#replyChannel();
    await this.#flow.wait();
    return slot;
  }

  /** Rejects every pending call with `canceled`, then closes the client's channels. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#calls.failAll((p) => new RpcError("canceled", `${describeTarget(p.target)}: the client was closed`));
    const slots = [this.#reply, ...this.#retired];
    this.#reply = undefined;
    this.#retired.clear();
    await Promise.all([...slots.map((slot) => slot?.opening.then(({ channel }) => channel.close()).catch(() => {})), this.#presence.close().catch(() => {})]);
  }

  /** The channel replies arrive on (opened on first use, and again after it closes or is retired), once it is ready. */
  #replyChannel(): Promise<ReplySlot> {
    if (this.#reply === undefined) {
      const slot: ReplySlot = {
        opening: undefined!,
        open: undefined,
        retired: false,
        inFlight: 0,
        idle: () => {
          if (!slot.retired || !this.#retired.delete(slot)) return;
          void slot.opening.then(({ channel }) => channel.close()).catch(() => {});
        },
      };
      slot.opening = this.#openReplyChannel(slot);
      this.#reply = slot;
      slot.opening.catch(() => {
        if (this.#reply === slot) this.#reply = undefined;
      });
    }
    const slot = this.#reply;
    return slot.open !== undefined ? Promise.resolve(slot) : slot.opening.then(() => slot);
  }

  async #openReplyChannel(slot: ReplySlot): Promise<ReplyChannel> {
    const channel = await this.#source.open();
    // Before anything else: a close during the setup below (even one read together with consume-ok) fails the calls published on it and lets the next call reopen.
    channel.onClose(() => {
      const current = this.#reply === slot;
      if (current) this.#reply = undefined;
      this.#retired.delete(slot);
      this.#calls.failRoute(slot, (p) =>
        new RpcError("connection_lost", `${describeTarget(p.target)}: the connection to RabbitMQ was lost while waiting for a reply`),
      );
      // Reopen at once (waiting for a reconnection), not at the next call: health() and the next call find it ready.
      if (current && slot.open !== undefined && !this.#closed && !this.#source.closed) void this.#replyChannel().catch(() => {});
    });
    try {
      let replyTo = DIRECT_REPLY_TO;
      if (this.#options.replyQueue === "exclusive") {
        replyTo = await channel.declareQueue("", { exclusive: true, autoDelete: true, durable: false });
      }
      // Direct reply-to requires the consumer (no-ack) and the publishes on the same channel.
      await channel.consume(replyTo, (msg) => this.#onReply(msg), { noAck: true });
      channel.onReturn((msg) => this.#onReturn(msg));
      if (channel.closed) throw new Error("the channel closed while it was being set up");
      slot.open = { channel, replyTo };
      return slot.open;
    } catch (err) {
      await channel.close();
      throw err;
    }
  }

  #onReply(msg: Delivery | null): void {
    if (msg === null) return; // consumer cancelled by the broker; the channel close follows
    this.#silentTimeouts = 0;
    const id = msg.properties.correlationId as unknown;
    const pending = typeof id === "string" ? this.#calls.find(id) : undefined;
    if (pending === undefined) return; // a late reply to a call that already settled: ignored by design
    const method = pending.method;
    const decoded = decodeBody(msg.content, msg.properties.contentType as string | undefined, this.#options.maxMessageBytes);
    if (!decoded.ok) {
      pending.fail(new RpcError("invalid_response", `${describeTarget(pending.target)}: unreadable reply: ${decoded.reason}`, pending.target));
      return;
    }
    if (msg.properties.type === RESULT_TYPE) {
      const response = pending.checks.receiveResponse(decoded.value);
      if (response instanceof Invalid) pending.fail(new ValidationError("invalid_response", "client", response.issues, pending.target));
      else pending.succeed(response);
      return;
    }
    const target = pending.target;
    const body = msg.properties.type === ERROR_TYPE ? toErrorBody(decoded.value) : undefined;
    if (body === undefined || !isReplyCode(body.code)) {
      const what = body === undefined ? `reply type ${JSON.stringify(msg.properties.type)}` : `error code "${body.code}", which only a caller may raise`;
      pending.fail(new RpcError("invalid_response", `${describeTarget(target)}: malformed reply (${what})`, { ...target, data: body }));
      return;
    }
    pending.fail(this.#errorFromReply(body, method, target));
  }

  /**
   * The error a reply carries: a declared one with its data checked; a
   * framework one; or a code this contract does not know (a server on a newer
   * compatible contract that added it), passed on as an untyped `RpcError`.
   */
  #errorFromReply(body: { code: string; message: string; data?: unknown }, method: MethodDescriptor<any, any, any>, target: { service: string; method: string }): RpcError {
    const receiveData = checksFor(method).receiveErrors.get(body.code);
    if (receiveData !== undefined) {
      const data = receiveData(body.data);
      if (data instanceof Invalid) return new ValidationError("invalid_response", "client", data.issues, { ...target, what: `data of error "${body.code}"` });
      return new RpcError(body.code, body.message, { ...target, data });
    }
    if ((body.code === "invalid_request" || body.code === "invalid_response") && isIssueList(body.data)) {
      return new ValidationError(body.code, "server", body.data.issues, target);
    }
    // Servers send framework messages without the target; an older one may have prefixed it already.
    const prefix = `${describeTarget(target)}: `;
    return new RpcError(body.code, body.message.startsWith(prefix) ? body.message : prefix + body.message, { ...target, data: body.data });
  }

  #onReturn(msg: Returned): void {
    this.#silentTimeouts = 0;
    const id = msg.properties.correlationId as unknown;
    const pending = typeof id === "string" ? this.#calls.find(id) : undefined;
    if (pending === undefined) return;
    const target = pending.target;
    pending.fail(new RpcError("no_server", `${describeTarget(target)}: no server: queue "${pending.queue}" does not exist (the broker returned the request unrouted)`, target));
  }

}

/** The most an idempotency key may take: AMQP's `message_id` is a short string. */
const MAX_KEY_BYTES = 255;

/** A non-empty string that fits in `message_id`. */
function isIdempotencyKey(key: unknown): key is string {
  return typeof key === "string" && key.length > 0 && (key.length <= MAX_KEY_BYTES / 3 || Buffer.byteLength(key) <= MAX_KEY_BYTES);
}

/** The failure of a call to a queue that exists but that no server consumes. */
function noConsumer(call: Call): RpcError {
  return new RpcError(
    "no_server",
    `${describeTarget(call.target)}: no server: queue "${call.queue}" exists but no server consumes it; nothing was sent (the call option waitForServer, or warren call --wait-for-server, waits for one within the deadline)`,
    call.target,
  );
}

function asConnectionLost(err: unknown, target: { service: string; method: string }): RpcError {
  if (err instanceof RpcError) return new RpcError(err.code, `${describeTarget(target)}: ${err.message}`, { ...target, cause: err });
  return new RpcError("connection_lost", `${describeTarget(target)}: cannot open a channel: ${(err as Error).message}`, { ...target, cause: err });
}

function isIssueList(data: unknown): data is { issues: { path: string; message: string }[] } {
  const issues = (data as { issues?: unknown } | null | undefined)?.issues;
  return Array.isArray(issues) && issues.every((i) => typeof i?.path === "string" && typeof i?.message === "string");
}

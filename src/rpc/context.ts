/**
 * The {@link HandlerContext} a server hands each handler: who is calling,
 * until when, and how to raise a declared error.
 */
import type { Delivery } from "../amqp/channel-source.js";
import type { MethodDescriptor } from "../core/descriptor.js";
import { RpcError } from "../core/errors.js";
import type { HandlerContext } from "./handler.js";
import { requesterAlive, type QueueProbe } from "./presence.js";

/** Why a request's reply was not published: what `publish` threw, and whether the broker redelivers the request (its channel closed) or it was dropped. */
export interface ReplyFailure {
  /** What publishing the reply threw. */
  readonly error: unknown;
  /** True when the channel was closed, so the unacknowledged request comes back; false when the reply was dropped and the request acknowledged. */
  readonly redelivered: boolean;
}

/** A server's own context, kept under a symbol on itself: an own enumerable property, so a copy (`{ ...ctx }`, `Object.assign`) keeps the way back. */
const ORIGINAL = Symbol("warren.context");

/** The {@link HandlerContext} of one request; its AbortSignal is created only if a handler reads it. */
export class Context implements HandlerContext<any> {
  /** This context: an interceptor that hands on a changed copy still leads {@link replyFailureOf} here. */
  readonly [ORIGINAL]: Context = this;
  readonly method: string;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly redelivered: boolean;
  readonly replyTo: string;
  readonly idempotencyKey: string;
  /** Set by the server when the reply could not be published; read through {@link replyFailureOf}. */
  replyFailure: ReplyFailure | undefined = undefined;
  #controller: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly service: string,
    private readonly descriptor: MethodDescriptor,
    readonly correlationId: string,
    msg: Delivery,
    readonly deadline: number | undefined,
    private readonly probe: () => QueueProbe,
  ) {
    this.method = descriptor.name;
    this.headers = (msg.properties.headers as Record<string, unknown> | undefined) ?? {};
    this.redelivered = msg.fields.redelivered;
    this.replyTo = typeof msg.properties.replyTo === "string" ? msg.properties.replyTo : "";
    const messageId = msg.properties.messageId;
    this.idempotencyKey = typeof messageId === "string" && messageId !== "" ? messageId : correlationId;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      this.#controller = controller;
      if (this.deadline !== undefined) {
        const abort = () => controller.abort(new RpcError("timeout", `${this.service}.${this.method}: deadline passed`));
        const left = this.deadline - Date.now();
        if (left <= 0) abort();
        else this.#timer = setTimeout(abort, left);
      }
    }
    return this.#controller.signal;
  }

  requesterAlive(): Promise<boolean> {
    return requesterAlive(this.probe(), this.replyTo);
  }

  error(code: string, data?: unknown): RpcError<string, any> {
    const spec = this.descriptor.errors[code];
    return new RpcError(code, spec?.description ?? code, { service: this.service, method: this.method, data });
  }

  /** Stops the deadline timer; called once the request is finished. */
  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}

/**
 * Why the reply to the request of `ctx` could not be published, once the
 * server has tried (telemetry reads it when it ends the request's span);
 * `undefined` when it was published, not yet sent, or `ctx` is neither a
 * server's own context nor a copy of one (an interceptor before telemetry
 * may hand on `{ ...ctx, … }`).
 */
export function replyFailureOf(ctx: HandlerContext<any>): ReplyFailure | undefined {
  return (ctx as { readonly [ORIGINAL]?: Context })[ORIGINAL]?.replyFailure;
}

/**
 * The wire format (protocol v1): property and header names, body encoding and
 * decoding. Pure functions; no AMQP I/O here.
 *
 * @see docs/PROTOCOL.md
 */
import { isUtf8 } from "node:buffer";
import { SERVER_CODES, type Code } from "./codes.js";
import { RpcError } from "./errors.js";

/** Body content type of every request and reply. */
export const CONTENT_TYPE = "application/json";
/** The pseudo-queue of RabbitMQ's direct reply-to. */
export const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";
/** Header: absolute deadline of the call, milliseconds since the Unix epoch. */
export const DEADLINE_HEADER = "x-warren-deadline";
/** Header: protocol version of the sender. */
export const PROTOCOL_HEADER = "x-warren-protocol";
/** The protocol version this runtime speaks. */
export const PROTOCOL_VERSION = 1;
/** Reply `type` of a successful call. */
export const RESULT_TYPE = "result";
/** Reply `type` of a failed call. */
export const ERROR_TYPE = "error";
/** Default largest accepted message body: 1 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** Outcome of {@link decodeBody}. */
export type Decoded = { ok: true; value: unknown } | { ok: false; reason: string };

/** Serialises a body. `undefined` (a void result) is sent as `null`. */
export function encodeBody(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value ?? null), "utf8");
}

/**
 * Decodes a JSON body: checks content type and size before parsing, then UTF-8,
 * then JSON. Own `__proto__` keys are dropped so a decoded object can never
 * change a prototype if later merged with `Object.assign`.
 */
export function decodeBody(content: Buffer, contentType: string | undefined, maxBytes: number): Decoded {
  if (contentType !== CONTENT_TYPE) {
    return { ok: false, reason: `content_type must be "${CONTENT_TYPE}", got ${contentType === undefined ? "none" : JSON.stringify(contentType)}` };
  }
  if (content.length > maxBytes) return { ok: false, reason: `body of ${content.length} bytes exceeds the limit of ${maxBytes}` };
  if (!isUtf8(content)) return { ok: false, reason: "body is not valid UTF-8" };
  const text = content.toString("utf8");
  try {
    return { ok: true, value: text.includes('"__proto__"') ? JSON.parse(text, dropProto) : JSON.parse(text) };
  } catch (err) {
    return { ok: false, reason: `body is not JSON: ${(err as Error).message}` };
  }
}

function dropProto(key: string, value: unknown): unknown {
  return key === "__proto__" ? undefined : value;
}

/** The body of an `error` reply. */
export interface ErrorBody {
  code: string;
  message: string;
  data?: unknown;
}

/** Reads an `error` reply body; anything malformed becomes `invalid_response`. */
export function toErrorBody(value: unknown): ErrorBody | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { code, message, data } = value as Record<string, unknown>;
  if (typeof code !== "string" || !/^[a-z][a-z0-9_]*$/.test(code)) return undefined;
  return { code, message: typeof message === "string" ? message : code, ...(data === undefined ? {} : { data }) };
}

/** True when `code` may appear in an error reply for a method declaring `declared` codes (caller-side codes such as `timeout` may not). */
export function isKnownReplyCode(code: string, declared: Readonly<Record<string, unknown>>): boolean {
  return Object.hasOwn(declared, code) || SERVER_CODES.includes(code as Code);
}

/** The wire body of an error raised on the server; internal details only when `expose` is set. */
export function serverErrorBody(err: RpcError, expose: boolean): ErrorBody {
  const body: ErrorBody = { code: err.code, message: err.message };
  if (err.data !== undefined) body.data = err.data;
  if (expose && err.cause instanceof Error) body.data = { ...(body.data as object), cause: err.cause.message, stack: err.cause.stack };
  return body;
}

/**
 * Reads the deadline header: `undefined` when absent, a number when valid,
 * `null` when present but not a finite number (the request is then malformed).
 */
export function readDeadline(headers: Record<string, unknown> | undefined): number | undefined | null {
  const raw = headers?.[DEADLINE_HEADER];
  if (raw === undefined) return undefined;
  const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : NaN;
  return Number.isFinite(n) ? n : null;
}

/** Event header: which delivery attempt this is (1 when absent); set when a failed event is re-queued for another try. */
export const ATTEMPT_HEADER = "x-warren-attempt";
/** Dead-letter header: why the event was dead-lettered (`bad_message`, `invalid_event`, `handler_failed`). */
export const DEAD_REASON_HEADER = "x-warren-dead-reason";
/** Dead-letter header: the error text (validation issues or the handler's error message), at most 1,000 characters. */
export const DEAD_ERROR_HEADER = "x-warren-dead-error";
/** Dead-letter header: the queue the event was consumed from. */
export const DEAD_QUEUE_HEADER = "x-warren-dead-queue";
/** Retry and dead-letter header: the exchange the event was first published to (a copy travels through the default exchange). */
export const ORIGIN_EXCHANGE_HEADER = "x-warren-exchange";
/** Retry and dead-letter header: the routing key the event was first published with. */
export const ORIGIN_ROUTING_KEY_HEADER = "x-warren-routing-key";

/** Reads the attempt header: a positive integer, else 1. */
export function readAttempt(headers: Record<string, unknown> | undefined): number {
  const raw = headers?.[ATTEMPT_HEADER];
  return typeof raw === "number" && Number.isInteger(raw) && raw >= 1 ? raw : 1;
}

/**
 * The wire format (protocol v1): property and header names, body encoding and
 * decoding. Pure functions; no AMQP I/O here.
 *
 * @see docs/PROTOCOL.md
 */
import { SERVER_CODES, isFrameworkCode } from "./codes.js";
import { RpcError } from "./errors.js";

/** Body content type of every request and reply. */
export const CONTENT_TYPE = "application/json";
/** The pseudo-queue of RabbitMQ's direct reply-to. */
export const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";
/** Header: absolute deadline of the call, milliseconds since the Unix epoch. */
export const DEADLINE_HEADER = "x-warren-deadline";
/** Header: protocol version of the sender. */
export const PROTOCOL_HEADER = "x-warren-protocol";
/**
 * Header: the version of the contract the sender was generated from (its
 * `version`), on requests and events. A receiver on another compatibility
 * line refuses the message with `incompatible_version` (src/core/versions.ts).
 */
export const CONTRACT_VERSION_HEADER = "x-warren-contract-version";
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

/** Serialises a body. `undefined` (a void result) is sent as `null`. Throws what `JSON.stringify` throws (a BigInt, a cycle, a value nested too deep). */
export function encodeBody(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value ?? null), "utf8");
}

/** Outcome of {@link tryEncodeBody}. */
export type Encoded = { ok: true; body: Buffer } | { ok: false; reason: string };

/** {@link encodeBody} that reports, instead of throwing, a value JSON cannot encode. */
export function tryEncodeBody(value: unknown): Encoded {
  try {
    return { ok: true, body: encodeBody(value) };
  } catch (err) {
    const reason = err instanceof RangeError && /call stack/i.test(err.message) ? "it is nested too deeply" : (err as Error)?.message ?? String(err);
    return { ok: false, reason: `cannot be encoded as JSON: ${reason}` };
  }
}

/** Longest AMQP short string, in bytes (a queue name, a routing key). */
const SHORT_STRING_BYTES = 255;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Why a request's `reply_to` cannot be replied to, or `undefined` when it can.
 * A reply to an address under `amq.rabbitmq.reply-to` that the broker did not
 * make (RabbitMQ 3.10 answers `amq.rabbitmq.reply-to.a.b` by closing the whole
 * connection with 541 INTERNAL_ERROR) would take the server's connection down
 * and bring the request back: such an address must be one the broker makes,
 * `amq.rabbitmq.reply-to.<pid>.<key>` with both parts base64 and the pid an
 * Erlang external-term pid. Any other name must fit in a queue name (255 bytes).
 * A well-formed address can still name a node that does not exist (3.10
 * closes the connection for that too): servers also stop running a request
 * that keeps costing them their channel (src/rpc/losses.ts).
 */
export function replyToProblem(replyTo: string): string | undefined {
  if (Buffer.byteLength(replyTo, "utf8") > SHORT_STRING_BYTES) return `reply_to is longer than ${SHORT_STRING_BYTES} bytes`;
  if (!replyTo.startsWith(DIRECT_REPLY_TO)) return undefined;
  const parts = replyTo.slice(DIRECT_REPLY_TO.length + 1).split(".");
  const ok =
    replyTo.charAt(DIRECT_REPLY_TO.length) === "." &&
    parts.length === 2 &&
    parts.every((p) => p.length > 0 && BASE64.test(p)) &&
    isErlangPid(Buffer.from(parts[0]!, "base64"));
  return ok ? undefined : `reply_to ${JSON.stringify(replyTo.slice(0, 80))} is not a direct reply-to address the broker made`;
}

/** True for the pid a broker puts in a direct reply-to address: 131, NEW_PID_EXT (88), the node as a UTF-8 atom (`name@host`), then id, serial and creation. */
function isErlangPid(term: Buffer): boolean {
  if (term.length < 4 || term[0] !== 131 || term[1] !== 88) return false;
  // ATOM_UTF8_EXT (118) has a 2-byte length, SMALL_ATOM_UTF8_EXT (119) one byte.
  const atom = term[2];
  if (atom !== 118 && atom !== 119) return false;
  const header = atom === 118 ? 5 : 4;
  if (term.length < header) return false;
  const nameLength = atom === 118 ? term.readUInt16BE(3) : term[3]!;
  if (term.length !== header + nameLength + 12) return false;
  return /^[^@]+@[^@]+$/.test(term.toString("utf8", header, header + nameLength));
}

/** Refuses (throws on) malformed UTF-8; a byte order mark is kept, so JSON.parse refuses it as before. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes a JSON body: checks content type and size before parsing, then UTF-8,
 * then JSON. Own `__proto__` keys are dropped so a decoded object can never
 * change a prototype if later merged with `Object.assign`.
 */
export function decodeBody(content: Buffer, contentType: string | undefined, maxBytes: number): Decoded {
  if (contentType !== CONTENT_TYPE) {
    const problem = contentTypeProblem(contentType);
    if (problem !== undefined) return { ok: false, reason: problem };
  }
  if (content.length > maxBytes) return { ok: false, reason: `body of ${content.length} bytes exceeds the limit of ${maxBytes}` };
  let text: string;
  try {
    text = strictUtf8.decode(content); // checks and decodes in one pass
  } catch {
    return { ok: false, reason: "body is not valid UTF-8" };
  }
  try {
    return { ok: true, value: text.includes('"__proto__"') ? JSON.parse(text, dropProto) : JSON.parse(text) };
  } catch (err) {
    return { ok: false, reason: `body is not JSON: ${(err as Error).message}` };
  }
}

/**
 * Why a `content_type` other than exactly `application/json` is refused, or
 * `undefined` when it is JSON after all: media-type parameters are accepted
 * (`application/json; charset=utf-8`, as other clients send), the type is
 * case-insensitive, and a charset other than UTF-8 is refused by name.
 */
export function contentTypeProblem(contentType: string | undefined): string | undefined {
  const [type = "", ...params] = (contentType ?? "").split(";");
  if (type.trim().toLowerCase() === CONTENT_TYPE) {
    for (const param of params) {
      const [name = "", value = ""] = param.split("=");
      if (name.trim().toLowerCase() !== "charset") continue;
      const charset = value.trim().replace(/^"(.*)"$/, "$1").toLowerCase();
      if (charset !== "utf-8" && charset !== "utf8") return `content_type ${JSON.stringify(contentType)}: charset "${charset}" is not supported; send UTF-8`;
    }
    return undefined;
  }
  return `content_type must be "${CONTENT_TYPE}", got ${contentType === undefined ? "none" : JSON.stringify(contentType)}`;
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

/**
 * True when `code` may appear in an error reply: an application code (declared
 * by the caller's contract or added by a newer one) or a code servers send;
 * not a caller-side framework code such as `timeout`.
 */
export function isReplyCode(code: string): boolean {
  return !isFrameworkCode(code) || SERVER_CODES.includes(code);
}

/**
 * For an {@link RpcError} that escaped a handler and came from a call or
 * publish the handler made, what happened: that call failed, with its code and
 * message. Such an error is one whose code only a caller or a publisher raises
 * (`timeout`, `no_server`, `connection_lost`, `rejected`, …: not
 * {@link isReplyCode}), or one that names the service and method of another
 * call than `own` (warren's client sets them on every error of a call: an
 * `invalid_request` of the handler's own nested request, a peer's `internal`
 * or `permission_denied`). `undefined` for anything else, such as a code the
 * handler raised itself.
 */
export function describeFailedCall(err: unknown, own?: { readonly service: string; readonly method: string }): string | undefined {
  if (!(err instanceof RpcError)) return undefined;
  const ofAnotherCall = err.service !== undefined && (own === undefined || err.service !== own.service || err.method !== own.method);
  if (isReplyCode(err.code) && !ofAnotherCall) return undefined;
  return `a call or publish the handler made failed (${err.code}: ${err.message})`;
}

/** The wire body of an error raised on the server; internal details only when `expose` is set. */
export function serverErrorBody(err: RpcError, expose: boolean): ErrorBody {
  const body: ErrorBody = { code: err.code, message: err.message };
  if (err.data !== undefined) body.data = err.data;
  if (expose && err.cause instanceof Error) body.data = { ...(body.data as object), cause: describeFailedCall(err.cause) ?? err.cause.message, stack: err.cause.stack };
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
/** Dead-letter header: why the event was dead-lettered (`bad_message`, `invalid_event`, `incompatible_version`, `handler_failed`). */
export const DEAD_REASON_HEADER = "x-warren-dead-reason";
/** Dead-letter header: the error text (validation issues or the handler's error message), at most 1,000 characters. */
export const DEAD_ERROR_HEADER = "x-warren-dead-error";
/** Dead-letter header: the queue the event was consumed from. */
export const DEAD_QUEUE_HEADER = "x-warren-dead-queue";
/** Retry and dead-letter header: the exchange the event was first published to (a copy travels through the default exchange). */
export const ORIGIN_EXCHANGE_HEADER = "x-warren-exchange";
/** Retry and dead-letter header: the routing key the event was first published with. */
export const ORIGIN_ROUTING_KEY_HEADER = "x-warren-routing-key";

/**
 * Infix of a wait queue's name: a group's retries that wait `d` ms do so in
 * `<group queue>.retry.<d>`, whose messages expire after `d` ms back into the
 * group queue (docs/PROTOCOL.md, "Acknowledgement, retries and dead letters").
 */
export const RETRY_QUEUE_INFIX = ".retry.";
/** How long a broadcast subscriber's wait queue outlives its last use (`x-expires` = delay + this): it goes away after its subscriber. */
export const BROADCAST_RETRY_EXPIRES_MS = 60_000;
/** `x-max-length` of the dead-letter queue shared by an event's broadcast subscribers: past it the oldest dead letter is dropped. */
export const BROADCAST_DEAD_MAX_LENGTH = 10_000;
/** `x-message-ttl` of the dead-letter queue shared by an event's broadcast subscribers: 7 days. */
export const BROADCAST_DEAD_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/** Reads the attempt header: a positive integer, else 1. */
export function readAttempt(headers: Record<string, unknown> | undefined): number {
  const raw = headers?.[ATTEMPT_HEADER];
  return typeof raw === "number" && Number.isInteger(raw) && raw >= 1 ? raw : 1;
}

/**
 * The closed list of framework error codes. Application errors declared in a
 * contract use their own snake_case codes next to these.
 *
 * @see docs/PROTOCOL.md#error-codes
 */
export const Code = {
  /** Server: the request body was not UTF-8 JSON, had the wrong content type, or was too large. Fix the caller. */
  bad_message: "bad_message",
  /** Server: the service has no method of that name. The caller's contract is newer than the server's. */
  unknown_method: "unknown_method",
  /** Either side: the request does not match the method's request schema. Nothing was run. */
  invalid_request: "invalid_request",
  /** Either side: the handler's result (or a declared error's data) does not match the contract. A server bug. */
  invalid_response: "invalid_response",
  /** Publisher or subscriber: an event payload does not match its schema, or its routing key cannot be built. Nothing was published / the event was dead-lettered. */
  invalid_event: "invalid_event",
  /** Server: the handler threw something that is not a declared error. Details are in the server log. */
  internal: "internal",
  /** Server or subscriber: the sender's contract version is on another compatibility line than the receiver's (e.g. 1.4.0 and 2.0.0); nothing ran. The message names both; regenerate the older side from the contract its peer runs. */
  incompatible_version: "incompatible_version",
  /** Server: the request carries no valid credentials (a server interceptor refused it). Nothing ran. */
  unauthenticated: "unauthenticated",
  /** Server: the caller is known but may not do this (a server interceptor or the handler refused it). Nothing ran, or nothing that matters. */
  permission_denied: "permission_denied",
  /** Server: the method exists in the contract but has no implementation yet. */
  unimplemented: "unimplemented",
  /** Server (with deduplication on): the call's idempotency key was already used for a different request (another method or other arguments). Nothing ran; send a new key for a new request. */
  idempotency_conflict: "idempotency_conflict",
  /** Caller: no reply arrived within the call's deadline. The request may or may not have run. */
  timeout: "timeout",
  /** Caller: the call was aborted through its `AbortSignal`, or its client was closed. */
  canceled: "canceled",
  /** Caller: no queue exists for the service, so the request came straight back unrouted. Nothing ran. */
  no_server: "no_server",
  /** Caller: the connection or channel closed while the call was in flight. The request may or may not have run. */
  connection_lost: "connection_lost",
  /** Publisher: the broker refused the event with a negative confirm (a queue at its length limit, a quorum queue without a leader). It was not enqueued; publishing it again later may succeed. */
  rejected: "rejected",
  /** Any side: the broker refused to declare what the contract needs (an exchange or queue that exists with another kind or other arguments). Nothing was sent; fix the broker or the contract. */
  setup_failed: "setup_failed",
  /** Any side: the broker refused the user (wrong user or password, no access to the virtual host, or no permission on a queue or exchange). Fix the credentials or the permissions. */
  access_refused: "access_refused",
} as const;

/** A framework error code. */
export type Code = keyof typeof Code;

/** Codes a server puts on the wire in an `error` reply. */
export const SERVER_CODES: readonly Code[] = [
  "bad_message",
  "unknown_method",
  "invalid_request",
  "invalid_response",
  "internal",
  "unimplemented",
  "incompatible_version",
  "unauthenticated",
  "permission_denied",
  "idempotency_conflict",
];

/**
 * Codes after which a retry may succeed. Retrying is only safe for methods the
 * contract declares `idempotent`: after `timeout` and `connection_lost` the
 * first attempt may still have run.
 */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set<Code>(["timeout", "no_server", "connection_lost"]);

/** True when `code` is one of the framework codes (as opposed to a declared application error). */
export function isFrameworkCode(code: string): code is Code {
  return Object.hasOwn(Code, code);
}

import type { Code } from "./codes.js";

/** Options shared by every {@link RpcError} constructor. */
export interface RpcErrorOptions<D = unknown> {
  /** Structured detail; for declared errors it is validated against the contract. */
  data?: D;
  /** Service name, when the error belongs to a call. */
  service?: string;
  /** Method name, when the error belongs to a call. */
  method?: string;
  /** The underlying error, kept for logs; never sent over the wire. */
  cause?: unknown;
}

/**
 * The one error type warren raises for a call. `code` is a framework
 * {@link Code} or an application error declared in the method's contract;
 * `data` carries the detail. Callers switch on `code`, never on `message`.
 */
export class RpcError<C extends string = Code | (string & {}), D = unknown> extends Error {
  /** snake_case error code; stable across versions. */
  readonly code: C;
  /** Structured detail (declared errors: validated against the contract). */
  readonly data: D;
  /** Service of the failed call, when known. */
  readonly service: string | undefined;
  /** Method of the failed call, when known. */
  readonly method: string | undefined;

  constructor(code: C, message: string, options: RpcErrorOptions<D> = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RpcError";
    this.code = code;
    this.data = options.data as D;
    this.service = options.service;
    this.method = options.method;
  }

  /** The wire form of this error: `{ code, message, data? }`. */
  toJSON(): { code: C; message: string; data?: D } {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/** One schema violation: where (JSON pointer into the checked value) and why. */
export interface ValidationIssue {
  /** JSON pointer to the offending value, `""` for the root. */
  readonly path: string;
  /** Human-readable reason, e.g. `must have required property 'b'`. */
  readonly message: string;
}

/** Which end of the round trip found the violation. */
export type ValidationSide = "client" | "server";

/**
 * A request or response that does not match the contract. `issues` lists every
 * failing path; `side` tells whether the caller's own runtime caught it (nothing
 * was sent) or the server did.
 */
export class ValidationError extends RpcError<"invalid_request" | "invalid_response" | "invalid_event", { issues: ValidationIssue[] }> {
  /** Every failing path with its reason. */
  readonly issues: readonly ValidationIssue[];
  /** Where the violation was detected. */
  readonly side: ValidationSide;

  constructor(
    code: "invalid_request" | "invalid_response" | "invalid_event",
    side: ValidationSide,
    issues: ValidationIssue[],
    options: Omit<RpcErrorOptions, "data"> & { what?: string } = {},
  ) {
    const what = options.what ?? (code === "invalid_request" ? "request" : code === "invalid_event" ? "payload" : "response");
    super(code, `${describeTarget(options)}: invalid ${what}: ${formatIssues(issues)}`, { ...options, data: { issues } });
    this.name = "ValidationError";
    this.issues = issues;
    this.side = side;
  }
}

/** True when `value` is an {@link RpcError} (or a subclass such as {@link ValidationError}). */
export function isRpcError(value: unknown): value is RpcError {
  return value instanceof RpcError;
}

/** `Service.method` or whatever part is known, for messages. */
export function describeTarget(target: { service?: string | undefined; method?: string | undefined }): string {
  if (target.service && target.method) return `${target.service}.${target.method}`;
  return target.service ?? target.method ?? "warren";
}

/** Formats issues as `/a must be number; /b must ...`, bounded in length. */
export function formatIssues(issues: readonly ValidationIssue[]): string {
  const shown = issues.slice(0, 5).map((i) => `${i.path === "" ? "(root)" : i.path} ${i.message}`);
  if (issues.length > shown.length) shown.push(`and ${issues.length - shown.length} more`);
  return shown.join("; ");
}

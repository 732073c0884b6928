/**
 * Structured logging. warren hands each record to a {@link Logger} as fields
 * plus a message — the call shape pino and console share (`logger.warn(obj,
 * msg)`) — so a JSON logger gets the service, method, correlation id and
 * error code as fields, and the default logger prints one readable line.
 * Records never carry credentials: URLs are redacted before they are logged.
 */
import { describeTarget } from "./errors.js";

/** The fields of a log record; each is present only when it applies. */
export interface LogFields {
  /** The service (contract name) the record is about. */
  readonly service?: string | undefined;
  /** The method (wire name). */
  readonly method?: string | undefined;
  /** The event (wire name). */
  readonly event?: string | undefined;
  /** How the one-line form names what the record is about, when the service and method do not say it all (`Orders.order_placed subscriber (group billing)`). */
  readonly subject?: string | undefined;
  /** The request's correlation id. */
  readonly correlationId?: string | undefined;
  /** The error code the record reports (`internal`, `invalid_response`, …). */
  readonly code?: string | undefined;
  /** The queue concerned. */
  readonly queue?: string | undefined;
  /** The broker address, password redacted. */
  readonly url?: string | undefined;
  /** The error behind the record, when there is one (pino's key for errors). */
  readonly err?: unknown;
  readonly [key: string]: unknown;
}

/**
 * Where log records go. pino and `console` fit as they are; so does any
 * object with these methods. `warn` and `error` are required; `info` and
 * `debug`, when present, get the records of those levels (reconnected, and
 * so on) — without them those records go to `warn`.
 */
export interface Logger {
  debug?(fields: LogFields, message: string): void;
  info?(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
}

/** One line for a record: `warren: <subject, else Service.method>: message`, or `warren: message` when it names neither. */
export function formatLogLine(fields: LogFields, message: string): string {
  if (fields.subject !== undefined) return `warren: ${fields.subject}: ${message}`;
  const method = fields.method ?? fields.event;
  return fields.service === undefined && method === undefined ? `warren: ${message}` : `warren: ${describeTarget({ service: fields.service, method })}: ${message}`;
}

/** The default logger: one line per record on the console (`console.info`, `console.warn`, `console.error`). */
export const consoleLogger: Logger = {
  info: (fields, message) => console.info(formatLogLine(fields, message)),
  warn: (fields, message) => console.warn(formatLogLine(fields, message)),
  error: (fields, message) => console.error(formatLogLine(fields, message)),
};

/** A logger that hands each record, as a {@link formatLogLine} line, to `push` (for tests and in-memory kits). */
export function lineLogger(push: (line: string) => void): Logger {
  const log = (fields: LogFields, message: string) => push(formatLogLine(fields, message));
  return { info: log, warn: log, error: log };
}

/** Logs at `info`, falling back to `warn` for loggers without it. */
export function logInfo(logger: Logger, fields: LogFields, message: string): void {
  if (logger.info !== undefined) logger.info(fields, message);
  else logger.warn(fields, message);
}

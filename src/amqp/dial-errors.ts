/**
 * Why a broker address did not take a connection, in words a user can act on.
 * Pure: it reads the error amqplib or Node raised and the bytes the broker
 * sent during the handshake, never a socket. `amqp/connection.ts` records
 * those bytes because amqplib drops the broker's reason when the broker
 * refuses to open a virtual host (its error says only
 * `Expected ConnectionOpenOk; got <ConnectionClose channel:0>`).
 */
/** How to start a broker: the hint of an address where nothing listens. */
export const START_HINT = "start one with `rabbitmq-server -detached` (or set AMQP_URL)";

/** What warren knows of one attempt, besides its error. */
export interface DialAttempt {
  /** `amqps:` (true) or `amqp:`. */
  readonly tls: boolean;
  /** The host as written in the URL. */
  readonly host: string;
  /** User name and virtual host as sent to the broker (percent-decoded). */
  readonly user: string;
  readonly vhost: string;
  /** The connect timeout of the attempt. */
  readonly timeoutMs: number;
}

/** One address's failure: its error code, the reason shown after the address, and what to do. */
export interface DialFailure {
  readonly code: "access_refused" | "connection_lost";
  /** Short, e.g. `ECONNREFUSED` or `login refused for user "bob": ACCESS_REFUSED`. */
  readonly reason: string;
  readonly hint?: string;
}

/** A `connection.close` the broker sent: its reply code and text. */
export interface BrokerClose {
  readonly replyCode: number;
  readonly replyText: string;
}

/** AMQP 0-9-1 reply codes a broker closes a handshake with. */
const REPLY_CODES: Readonly<Record<number, string>> = {
  320: "CONNECTION_FORCED",
  402: "INVALID_PATH",
  403: "ACCESS_REFUSED",
  501: "FRAME_ERROR",
  502: "SYNTAX_ERROR",
  503: "COMMAND_INVALID",
  504: "CHANNEL_ERROR",
  505: "UNEXPECTED_FRAME",
  506: "RESOURCE_ERROR",
  530: "NOT_ALLOWED",
  540: "NOT_IMPLEMENTED",
  541: "INTERNAL_ERROR",
};

/**
 * The first `connection.close` (class 10, method 50) on channel 0 among the
 * frames a broker sent from the start of a connection, or undefined when
 * there is none (or the bytes are no AMQP frames).
 */
export function brokerClose(bytes: Uint8Array): BrokerClose | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + 7 <= b.length; ) {
    const type = b[at]!;
    const size = b.readUInt32BE(at + 3);
    const end = at + 7 + size;
    if (type < 1 || type > 8 || end >= b.length || b[end] !== 0xce) return undefined;
    if (type === 1 && b.readUInt16BE(at + 1) === 0 && size >= 7 && b.readUInt16BE(at + 7) === 10 && b.readUInt16BE(at + 9) === 50) {
      const textLength = b[at + 13]!;
      if (14 + textLength > 7 + size) return undefined;
      return { replyCode: b.readUInt16BE(at + 11), replyText: b.toString("utf8", at + 14, at + 14 + textLength) };
    }
    at = end + 1;
  }
  return undefined;
}

/** amqplib's message for a close during login: `Handshake terminated by server: 403 (ACCESS-REFUSED) with message "…"`. */
function closeFromMessage(message: string): BrokerClose | undefined {
  const m = /^Handshake terminated by server: (\d+) \([^)]*\) with message "(.*)"$/s.exec(message);
  return m ? { replyCode: Number(m[1]), replyText: m[2]! } : undefined;
}

/**
 * `text` with the password of any `scheme://user:password@` in it replaced by
 * `***`. (Not `redactUrl`: an error text such as `IP: 127.0.0.2 is not in the
 * cert's list` parses as a URL, and would come back altered.)
 */
function redactText(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:@/]*):[^\s@/]*@/gi, "$1:***@");
}

/** `s` as one shell word (quoted unless it is plainly safe). */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** TLS verification failures that trusting the broker's CA cures. */
const UNTRUSTED = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
]);

/** OpenSSL's errors for a TLS client answered by something that is not TLS. */
const NOT_TLS = new Set(["ERR_SSL_WRONG_VERSION_NUMBER", "ERR_SSL_PACKET_LENGTH_TOO_LONG", "ERR_SSL_UNEXPECTED_EOF_WHILE_READING"]);

/** The broker's close, read as a refusal of the login, of the virtual host, or something else. */
function fromClose(attempt: DialAttempt, close: BrokerClose): DialFailure {
  const name = REPLY_CODES[close.replyCode] ?? String(close.replyCode);
  const text = close.replyText.startsWith(`${name} - `) ? close.replyText.slice(name.length + 3) : close.replyText;
  const user = JSON.stringify(attempt.user);
  const vhost = JSON.stringify(attempt.vhost);
  if (close.replyCode === 403 && /^Login was refused/.test(text)) {
    return { code: "access_refused", reason: `login refused for user ${user}: ${name}`, hint: "check the user name and password (percent-encoded in the URL)" };
  }
  if (close.replyCode === 530 && /^access to vhost '.*' refused for user '.*'$/s.test(text)) {
    return {
      code: "access_refused",
      reason: `user ${user} has no access to virtual host ${vhost}: ${name}`,
      hint: `grant it with: rabbitmqctl set_permissions -p ${shellWord(attempt.vhost)} ${shellWord(attempt.user)} ".*" ".*" ".*"`,
    };
  }
  if (close.replyCode === 530 && /^vhost .* not found$/s.test(text)) {
    return {
      code: "access_refused",
      reason: `virtual host ${vhost} does not exist: ${name}`,
      hint: `create it with: rabbitmqctl add_vhost ${shellWord(attempt.vhost)} (or fix the URL's path)`,
    };
  }
  // Anything else (a connection limit, a node shutting down): the broker's own words.
  return { code: close.replyCode === 403 || close.replyCode === 530 ? "access_refused" : "connection_lost", reason: `${name} - ${text}` };
}

/**
 * Explains one failed attempt. `err` is what amqplib or Node rejected with;
 * `received` the bytes the broker sent before the failure, when recorded.
 * Passwords never appear: the reason holds no URL, and any text taken from an
 * error is redacted.
 */
export function explainDialFailure(attempt: DialAttempt, err: unknown, received?: Uint8Array): DialFailure {
  const e = (err ?? {}) as { code?: unknown; message?: unknown; reason?: unknown };
  const code = typeof e.code === "string" ? e.code : undefined;
  const message = typeof e.message === "string" ? redactText(e.message) : redactText(String(err));
  const close = (received && brokerClose(received)) ?? closeFromMessage(message);
  if (close) return fromClose(attempt, close);
  if (/^Expected ConnectionOpenOk; got <ConnectionClose/.test(message)) {
    // The broker's reason was not recorded: the login passed, opening the virtual host did not.
    return {
      code: "access_refused",
      reason: `the broker refused user ${JSON.stringify(attempt.user)} the virtual host ${JSON.stringify(attempt.vhost)}`,
      hint: `check that it exists and that the user has permissions on it: rabbitmqctl list_permissions -p ${shellWord(attempt.vhost)}`,
    };
  }
  if (code === "ECONNREFUSED") return { code: "connection_lost", reason: code, hint: START_HINT };
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return { code: "connection_lost", reason: `host ${JSON.stringify(attempt.host)} not found (${code})`, hint: "check the host name" };
  if (code === "ETIMEDOUT" || message === "connect ETIMEDOUT") {
    return { code: "connection_lost", reason: `no answer within ${attempt.timeoutMs} ms (ETIMEDOUT)`, hint: "check the host and port, and that no firewall drops the connection" };
  }
  if (code !== undefined && UNTRUSTED.has(code)) {
    return { code: "connection_lost", reason: `TLS handshake failed: ${message}`, hint: "pass the broker's CA in options.tls.ca" };
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    // Node's reason names the name it checked (the host, or options.tls.servername) and the certificate's:
    // "IP: 127.0.0.2 is not in the cert's list: 127.0.0.1", "Host: b. is not in the cert's altnames: DNS:a".
    const why = typeof e.reason === "string" ? redactText(e.reason) : message;
    const m = /^(?:IP|Host): (.+?)\.? is not (?:in the cert's (?:list|altnames)|cert's CN): (.+)$/s.exec(why);
    return {
      code: "connection_lost",
      reason: `TLS handshake failed: ${m === null ? why : `the certificate names ${m[2]}, not ${m[1]}`}`,
      hint: "connect to a host name the certificate lists, or set options.tls.servername to one",
    };
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return { code: "connection_lost", reason: `TLS handshake failed: ${message}`, hint: "renew the broker's certificate (or check this machine's clock)" };
  }
  if (attempt.tls && code !== undefined && NOT_TLS.has(code)) {
    return {
      code: "connection_lost",
      reason: "TLS handshake failed: the server does not speak TLS on that port",
      hint: "use amqp:// for it, or the broker's TLS port (5671 by default)",
    };
  }
  const head = received === undefined ? "" : Buffer.from(received.buffer, received.byteOffset, Math.min(received.byteLength, 8)).toString("latin1");
  if (!attempt.tls && (head.startsWith("\x15\x03") || head.startsWith("\x16\x03"))) {
    return { code: "connection_lost", reason: "the server on that port speaks TLS", hint: "use amqps:// for it" };
  }
  if (head.startsWith("HTTP/")) {
    return { code: "connection_lost", reason: "the server answered with HTTP, not AMQP", hint: "use the broker's AMQP port (5672 by default; 15672 is the management UI)" };
  }
  if (head.startsWith("AMQP")) {
    const version = [...head.slice(4)].map((c) => c.charCodeAt(0)).join("-");
    return { code: "connection_lost", reason: `the server does not speak AMQP 0-9-1 (it offered AMQP ${version})` };
  }
  if (/^Socket closed abruptly during opening handshake/.test(message) && (received === undefined || received.byteLength === 0)) {
    return {
      code: "connection_lost",
      reason: "the server closed the connection before the AMQP handshake",
      ...(attempt.tls ? {} : { hint: "if that port is a TLS listener, use amqps://" }),
    };
  }
  if (code?.startsWith("ERR_SSL_") || code?.startsWith("ERR_TLS_")) return { code: "connection_lost", reason: `TLS handshake failed: ${message}` };
  return { code: "connection_lost", reason: code ?? message };
}

/**
 * The message of a connect that no address accepted: every (redacted)
 * address with its reason, then each distinct hint once. `access_refused`
 * when any address refused the credentials (retrying will not help), else
 * `connection_lost`.
 */
export function dialFailureMessage(failures: readonly { url: string; failure: DialFailure }[]): { code: DialFailure["code"]; message: string } {
  const code = failures.some((f) => f.failure.code === "access_refused") ? "access_refused" : "connection_lost";
  const verb = code === "access_refused" ? "cannot connect to" : "cannot reach";
  const hints = [...new Set(failures.flatMap((f) => (f.failure.hint === undefined ? [] : [f.failure.hint])))];
  const where = failures.map((f) => `${f.url} (${f.failure.reason})`).join(", ");
  return { code, message: `${verb} RabbitMQ at ${where}${hints.length > 0 ? `: ${hints.join("; ")}` : ""}` };
}

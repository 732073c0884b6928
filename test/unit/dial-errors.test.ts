/**
 * Connection failures explained (src/amqp/dial-errors.ts) and broker URLs
 * parsed (parseBrokerUrl in src/amqp/connection.ts): pure strings and bytes,
 * no broker. The same cases against a real node: test/cluster/access.test.ts.
 */
import { describe, expect, it } from "vitest";
import { dialAmqp, parseBrokerUrl } from "../../src/amqp/connection.js";
import { START_HINT, brokerClose, dialFailureMessage, explainDialFailure, type DialAttempt } from "../../src/amqp/dial-errors.js";

/** One AMQP method frame on channel 0. */
function methodFrame(classId: number, methodId: number, args: Buffer): Buffer {
  const payload = Buffer.concat([Buffer.from([classId >> 8, classId & 0xff, methodId >> 8, methodId & 0xff]), args]);
  const head = Buffer.alloc(7);
  head.writeUInt8(1, 0);
  head.writeUInt16BE(0, 1);
  head.writeUInt32BE(payload.length, 3);
  return Buffer.concat([head, payload, Buffer.from([0xce])]);
}

/** connection.close(replyCode, replyText, 10, 40): what RabbitMQ sends when it refuses `connection.open`. */
function closeFrame(replyCode: number, replyText: string): Buffer {
  const text = Buffer.from(replyText, "utf8");
  const args = Buffer.alloc(2 + 1 + text.length + 4);
  args.writeUInt16BE(replyCode, 0);
  args.writeUInt8(text.length, 2);
  text.copy(args, 3);
  args.writeUInt16BE(10, 3 + text.length);
  args.writeUInt16BE(40, 5 + text.length);
  return methodFrame(10, 50, args);
}

/** What a broker sends before refusing a vhost: connection.start (abridged) and connection.tune. */
const START = methodFrame(10, 10, Buffer.from([0, 9, 0, 0, 0, 0, 0, 0, 0, 5, ...Buffer.from("PLAIN"), 0, 0, 0, 5, ...Buffer.from("en_US")]));
const TUNE = methodFrame(10, 30, Buffer.from([0x07, 0xff, 0x00, 0x02, 0x00, 0x00, 0x00, 0x3c]));
const VHOST_REFUSED = closeFrame(530, "NOT_ALLOWED - access to vhost 'x' refused for user 'bob'");
/** What RabbitMQ's TLS listener answers to AMQP's protocol header (a fatal unexpected_message alert), as captured. */
const TLS_ALERT = Buffer.from("1503010002020a", "hex");

const plain: DialAttempt = { tls: false, host: "127.0.0.1", user: "bob", vhost: "x", timeoutMs: 5000 };
const secure: DialAttempt = { ...plain, tls: true };
const error = (message: string, fields: Record<string, unknown> = {}) => Object.assign(new Error(message), fields);
const OPEN_REFUSED = error("Expected ConnectionOpenOk; got <ConnectionClose channel:0>");
const LOGIN_REFUSED = error(
  'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."',
);

describe("brokerClose", () => {
  it("finds the broker's connection.close after its other handshake frames", () => {
    expect(brokerClose(Buffer.concat([START, TUNE, VHOST_REFUSED]))).toEqual({
      replyCode: 530,
      replyText: "NOT_ALLOWED - access to vhost 'x' refused for user 'bob'",
    });
  });

  it("reads reply texts in UTF-8", () => {
    expect(brokerClose(closeFrame(530, "NOT_ALLOWED - access to vhost 'prod' refused for user 'jürgen'"))?.replyText).toContain("jürgen");
  });

  it("is undefined for no close, a cut-off frame, TLS bytes, a protocol header, nothing", () => {
    expect(brokerClose(Buffer.concat([START, TUNE]))).toBeUndefined();
    expect(brokerClose(Buffer.concat([START, VHOST_REFUSED.subarray(0, 20)]))).toBeUndefined();
    expect(brokerClose(TLS_ALERT)).toBeUndefined();
    expect(brokerClose(Buffer.from("AMQP\x00\x00\x09\x01", "latin1"))).toBeUndefined();
    expect(brokerClose(Buffer.alloc(0))).toBeUndefined();
  });
});

describe("explainDialFailure", () => {
  it("a vhost refused to the user, from the broker's bytes: access_refused and the grant command", () => {
    expect(explainDialFailure(plain, OPEN_REFUSED, Buffer.concat([START, TUNE, VHOST_REFUSED]))).toEqual({
      code: "access_refused",
      reason: 'user "bob" has no access to virtual host "x": NOT_ALLOWED',
      hint: 'grant it with: rabbitmqctl set_permissions -p x bob ".*" ".*" ".*"',
    });
  });

  it("quotes user and vhost for the shell when they need it", () => {
    const close = closeFrame(530, "NOT_ALLOWED - access to vhost 'a b' refused for user 'o'neil'");
    expect(explainDialFailure({ ...plain, user: "o'neil", vhost: "a b" }, OPEN_REFUSED, close).hint).toBe(
      `grant it with: rabbitmqctl set_permissions -p 'a b' 'o'\\''neil' ".*" ".*" ".*"`,
    );
    expect(explainDialFailure({ ...plain, vhost: "/" }, OPEN_REFUSED, closeFrame(530, "NOT_ALLOWED - access to vhost '/' refused for user 'bob'")).hint).toBe(
      `grant it with: rabbitmqctl set_permissions -p / bob ".*" ".*" ".*"`,
    );
  });

  it("a vhost refused without recorded bytes: still access_refused, naming user and vhost", () => {
    expect(explainDialFailure(plain, OPEN_REFUSED)).toEqual({
      code: "access_refused",
      reason: 'the broker refused user "bob" the virtual host "x"',
      hint: "check that it exists and that the user has permissions on it: rabbitmqctl list_permissions -p x",
    });
  });

  it("a vhost that does not exist", () => {
    expect(explainDialFailure({ ...plain, vhost: "nope" }, OPEN_REFUSED, closeFrame(530, "NOT_ALLOWED - vhost nope not found"))).toEqual({
      code: "access_refused",
      reason: 'virtual host "nope" does not exist: NOT_ALLOWED',
      hint: "create it with: rabbitmqctl add_vhost nope (or fix the URL's path)",
    });
  });

  it("other refusals keep the broker's own words", () => {
    const limit = closeFrame(530, "NOT_ALLOWED - access to vhost 'x' refused for user 'bob': connection limit (1) is reached");
    expect(explainDialFailure(plain, OPEN_REFUSED, limit)).toEqual({
      code: "access_refused",
      reason: "NOT_ALLOWED - access to vhost 'x' refused for user 'bob': connection limit (1) is reached",
    });
    const forced = closeFrame(320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'");
    expect(explainDialFailure(plain, error("Socket closed abruptly during opening handshake"), forced)).toEqual({
      code: "connection_lost",
      reason: "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
    });
  });

  it("a refused login, from amqplib's message: access_refused, check the user and password", () => {
    expect(explainDialFailure(plain, LOGIN_REFUSED, Buffer.alloc(0))).toEqual({
      code: "access_refused",
      reason: 'login refused for user "bob": ACCESS_REFUSED',
      hint: "check the user name and password (percent-encoded in the URL)",
    });
  });

  it("nothing listening: ECONNREFUSED with the start-a-broker hint, and only then", () => {
    expect(explainDialFailure(plain, error("connect ECONNREFUSED 127.0.0.1:1", { code: "ECONNREFUSED" }))).toEqual({
      code: "connection_lost",
      reason: "ECONNREFUSED",
      hint: START_HINT,
    });
    const others = [
      explainDialFailure(plain, OPEN_REFUSED),
      explainDialFailure(plain, LOGIN_REFUSED),
      explainDialFailure(plain, error("connect ETIMEDOUT")),
      explainDialFailure(secure, error("self-signed certificate in certificate chain", { code: "SELF_SIGNED_CERT_IN_CHAIN" })),
      explainDialFailure(secure, error("wrong version number", { code: "ERR_SSL_WRONG_VERSION_NUMBER" })),
      explainDialFailure(plain, error("Socket closed abruptly during opening handshake"), TLS_ALERT),
    ];
    for (const f of others) expect(f.hint ?? "").not.toContain("rabbitmq-server");
  });

  it("timeouts and unknown hosts", () => {
    expect(explainDialFailure(plain, error("connect ETIMEDOUT"))).toEqual({
      code: "connection_lost",
      reason: "no answer within 5000 ms (ETIMEDOUT)",
      hint: "check the host and port, and that no firewall drops the connection",
    });
    expect(explainDialFailure({ ...plain, host: "rabbit.invalid" }, error("getaddrinfo ENOTFOUND rabbit.invalid", { code: "ENOTFOUND" }))).toEqual({
      code: "connection_lost",
      reason: 'host "rabbit.invalid" not found (ENOTFOUND)',
      hint: "check the host name",
    });
  });

  it("TLS: an untrusted certificate, a name mismatch, an expired certificate", () => {
    expect(explainDialFailure(secure, error("self-signed certificate in certificate chain", { code: "SELF_SIGNED_CERT_IN_CHAIN" }))).toEqual({
      code: "connection_lost",
      reason: "TLS handshake failed: self-signed certificate in certificate chain",
      hint: "pass the broker's CA in options.tls.ca",
    });
    const ip = error("Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list: 127.0.0.1", {
      code: "ERR_TLS_CERT_ALTNAME_INVALID",
      reason: "IP: 127.0.0.2 is not in the cert's list: 127.0.0.1",
    });
    expect(explainDialFailure({ ...secure, host: "127.0.0.2" }, ip)).toEqual({
      code: "connection_lost",
      reason: "TLS handshake failed: the certificate names 127.0.0.1, not 127.0.0.2",
      hint: "connect to a host name the certificate lists, or set options.tls.servername to one",
    });
    const host = error("Hostname/IP does not match certificate's altnames: Host: rabbit.b. is not in the cert's altnames: DNS:rabbit.a", {
      code: "ERR_TLS_CERT_ALTNAME_INVALID",
      reason: "Host: rabbit.b. is not in the cert's altnames: DNS:rabbit.a",
    });
    // The name checked is the one Node reports (options.tls.servername, when set), not necessarily the URL's host.
    expect(explainDialFailure({ ...secure, host: "10.0.0.9" }, host).reason).toBe("TLS handshake failed: the certificate names DNS:rabbit.a, not rabbit.b");
    const unparsed = error("Hostname/IP does not match certificate's altnames: odd", { code: "ERR_TLS_CERT_ALTNAME_INVALID", reason: "odd" });
    expect(explainDialFailure(secure, unparsed).reason).toBe("TLS handshake failed: odd");
    expect(explainDialFailure(secure, error("certificate has expired", { code: "CERT_HAS_EXPIRED" }))).toEqual({
      code: "connection_lost",
      reason: "TLS handshake failed: certificate has expired",
      hint: "renew the broker's certificate (or check this machine's clock)",
    });
  });

  it("TLS against a plain port, and plain against a TLS port", () => {
    const wrongVersion = error("80BC…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number", { code: "ERR_SSL_WRONG_VERSION_NUMBER" });
    expect(explainDialFailure(secure, wrongVersion)).toEqual({
      code: "connection_lost",
      reason: "TLS handshake failed: the server does not speak TLS on that port",
      hint: "use amqp:// for it, or the broker's TLS port (5671 by default)",
    });
    const closed = error("Socket closed abruptly during opening handshake");
    expect(explainDialFailure(plain, closed, TLS_ALERT)).toEqual({
      code: "connection_lost",
      reason: "the server on that port speaks TLS",
      hint: "use amqps:// for it",
    });
    // A TLS listener that hangs up without an alert: the likeliest cause, as a question.
    expect(explainDialFailure(plain, closed, Buffer.alloc(0))).toEqual({
      code: "connection_lost",
      reason: "the server closed the connection before the AMQP handshake",
      hint: "if that port is a TLS listener, use amqps://",
    });
  });

  it("a server that is not an AMQP 0-9-1 broker", () => {
    const closed = error("Socket closed abruptly during opening handshake");
    expect(explainDialFailure(plain, closed, Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n")).reason).toBe("the server answered with HTTP, not AMQP");
    expect(explainDialFailure(plain, closed, Buffer.from("AMQP\x03\x01\x00\x00", "latin1")).reason).toBe(
      "the server does not speak AMQP 0-9-1 (it offered AMQP 3-1-0-0)",
    );
  });

  it("anything else: the error's code, else its message, with any URL's password redacted", () => {
    expect(explainDialFailure(plain, error("read ECONNRESET", { code: "ECONNRESET" }))).toEqual({ code: "connection_lost", reason: "ECONNRESET" });
    expect(explainDialFailure(plain, error("odd failure at amqp://bob:s3cret@h:1/x")).reason).toBe("odd failure at amqp://bob:***@h:1/x");
    expect(explainDialFailure(plain, "a string")).toEqual({ code: "connection_lost", reason: "a string" });
  });
});

describe("dialFailureMessage", () => {
  const refused = { code: "connection_lost", reason: "ECONNREFUSED", hint: START_HINT } as const;

  it("addresses where nothing listens: the message as it always was", () => {
    expect(dialFailureMessage([{ url: "amqp://u:***@h:1", failure: refused }, { url: "amqp://u:***@h:2", failure: refused }])).toEqual({
      code: "connection_lost",
      message: "cannot reach RabbitMQ at amqp://u:***@h:1 (ECONNREFUSED), amqp://u:***@h:2 (ECONNREFUSED): start one with `rabbitmq-server -detached` (or set AMQP_URL)",
    });
  });

  it("any refused access makes it access_refused; each hint once, in order", () => {
    const denied = explainDialFailure(plain, OPEN_REFUSED, VHOST_REFUSED);
    expect(
      dialFailureMessage([
        { url: "amqp://bob:***@a/x", failure: denied },
        { url: "amqp://bob:***@b:1/x", failure: refused },
        { url: "amqp://bob:***@c/x", failure: denied },
      ]),
    ).toEqual({
      code: "access_refused",
      message:
        'cannot connect to RabbitMQ at amqp://bob:***@a/x (user "bob" has no access to virtual host "x": NOT_ALLOWED), amqp://bob:***@b:1/x (ECONNREFUSED), ' +
        'amqp://bob:***@c/x (user "bob" has no access to virtual host "x": NOT_ALLOWED): ' +
        `grant it with: rabbitmqctl set_permissions -p x bob ".*" ".*" ".*"; ${START_HINT}`,
    });
  });

  it("no hint, no colon", () => {
    expect(dialFailureMessage([{ url: "amqp://h", failure: { code: "connection_lost", reason: "ECONNRESET" } }]).message).toBe(
      "cannot reach RabbitMQ at amqp://h (ECONNRESET)",
    );
  });
});

describe("parseBrokerUrl", () => {
  it("decodes percent-encoded user names and passwords as UTF-8", () => {
    const url = `amqp://${encodeURIComponent("jürgen@ops:1")}:${encodeURIComponent("pässwörd-€:@/")}@127.0.0.1:5672/x`;
    expect(parseBrokerUrl(url)).toEqual({ tls: false, host: "127.0.0.1", user: "jürgen@ops:1", password: "pässwörd-€:@/", vhost: "x" });
  });

  it("guest/guest without credentials, / without a path, %2F as /, amqps, IPv6 hosts", () => {
    expect(parseBrokerUrl("amqp://localhost")).toEqual({ tls: false, host: "localhost", user: "guest", password: "guest", vhost: "/" });
    expect(parseBrokerUrl("amqps://u:p@[::1]:5671/%2F")).toEqual({ tls: true, host: "::1", user: "u", password: "p", vhost: "/" });
    expect(parseBrokerUrl(`amqp://u:p@h/${encodeURIComponent("prod/ü")}`).vhost).toBe("prod/ü");
  });

  it("a component that is not UTF-8 percent-encoding decodes byte by byte, as amqplib's unescape did", () => {
    expect(parseBrokerUrl("amqp://u:p%E4ss@h").password).toBe("päss");
    expect(parseBrokerUrl("amqp://u:100%25@h").password).toBe("100%");
    expect(parseBrokerUrl("amqp://u:100%@h").password).toBe("100%");
  });

  it("refuses other schemes and non-URLs with a TypeError, passwords redacted", () => {
    expect(() => parseBrokerUrl("http://guest:s3cret@127.0.0.1:15672")).toThrow(
      new TypeError("warren: broker URL http://guest:***@127.0.0.1:15672 must start with amqp:// or amqps://, not http://"),
    );
    // Forgotten schemes, an unencoded / in the password: the password stays out of the message all the same.
    expect(() => parseBrokerUrl("guest:s3cret@localhost:5672")).toThrow(
      new TypeError("warren: broker URL guest:***@localhost:5672 must start with amqp:// or amqps://, not guest://"),
    );
    expect(() => parseBrokerUrl("amqp://bob:s3/cret@localhost:5672")).toThrow(
      new TypeError("warren: amqp://bob:***@localhost:5672 is not a broker URL; write amqp://user:password@host:5672/vhost (or amqps://)"),
    );
    expect(() => parseBrokerUrl("not a url")).toThrow(
      new TypeError("warren: not a url is not a broker URL; write amqp://user:password@host:5672/vhost (or amqps://)"),
    );
  });
});

describe("dialAmqp", () => {
  it("refuses an unknown scheme with a TypeError before dialing any address", async () => {
    // Port 1 refuses at once: had the first address been dialed, this would be an RpcError naming ECONNREFUSED.
    const err = await dialAmqp(["amqp://guest:guest@127.0.0.1:1", "http://guest:s3cret@127.0.0.1:15672"], { connectTimeoutMs: 1000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toBe("warren: broker URL http://guest:***@127.0.0.1:15672 must start with amqp:// or amqps://, not http://");
  });
});

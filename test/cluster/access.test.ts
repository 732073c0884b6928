/**
 * Connection errors a user can act on: refused logins and virtual hosts,
 * credentials with characters outside ASCII, TLS failures, several addresses.
 * Runs against one private RabbitMQ node (test/helpers/rabbit-nodes.ts) that
 * this file starts and stops: the machine's own node gets no users, vhosts or
 * listeners of ours. The node has a plain AMQP listener and a TLS listener (on
 * 127.0.0.1 and 127.0.0.2, same port; the certificate names only 127.0.0.1
 * and localhost), and loads its users, vhosts and permissions from a
 * definitions file at boot (no rabbitmqctl call per user: each costs ~1.5 s).
 *
 * Every error message is compared whole, so a test also fails when a password
 * shows or when the "start one with rabbitmq-server" hint appears where
 * nothing is missing.
 */
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RpcError, connect, type Connection, type ConnectionOptions } from "../../src/index.js";
import { clusterUnavailable, freePorts, startCluster, type RabbitCluster } from "../helpers/rabbit-nodes.js";
import { makeTestCerts } from "../helpers/tls-certs.js";

const unavailable = clusterUnavailable();
// In CI set WARREN_REQUIRE_CLUSTER=1, so that a runner without RabbitMQ installed fails instead of skipping.
if (unavailable && process.env.WARREN_REQUIRE_CLUSTER) throw new Error(`private-node tests cannot run: ${unavailable}`);
if (unavailable) console.warn(`private-node tests skipped: ${unavailable}`);

/** Users of the private node: name, password, and the vhosts they may use. */
const BOB = { name: "bob", password: "bob-s3cret", vhosts: ["other"] };
const ALICE = { name: "alice", password: "pässwörd-€", vhosts: ["x"] }; // non-ASCII password
const JURGEN = { name: "jürgen@ops:1", password: "jü-s3cret:@/", vhosts: ["x"] }; // non-ASCII, @ and : in the name
const USERS = [BOB, ALICE, JURGEN];

/** RabbitMQ's default password hash (rabbit_password_hashing_sha256): base64(salt ++ sha256(salt ++ utf8 password)). */
function passwordHash(password: string): string {
  const salt = randomBytes(4);
  return Buffer.concat([salt, createHash("sha256").update(Buffer.concat([salt, Buffer.from(password, "utf8")])).digest()]).toString("base64");
}

function definitions(): string {
  return JSON.stringify({
    vhosts: [{ name: "/" }, { name: "x" }, { name: "other" }],
    users: USERS.map((u) => ({ name: u.name, password_hash: passwordHash(u.password), hashing_algorithm: "rabbit_password_hashing_sha256", tags: [] })),
    permissions: USERS.flatMap((u) => u.vhosts.map((vhost) => ({ user: u.name, vhost, configure: ".*", write: ".*", read: ".*" }))),
  });
}

const enc = encodeURIComponent;
const silent = { warn() {}, error() {} };

let cluster: RabbitCluster | undefined;
let port = 0; // plain AMQP
let tlsPort = 0; // TLS, on 127.0.0.1 and 127.0.0.2
let ca: Buffer; // the CA that signed the broker's certificate
let otherCa: Buffer; // a CA that signed nothing of the broker's

/** The user's URL of the private node (user and password percent-encoded, as a URL needs). */
function urlOf(user: { name: string }, password: string, vhost: string, { scheme = "amqp", host = "127.0.0.1", at = port } = {}): string {
  return `${scheme}://${enc(user.name)}:${enc(password)}@${host}:${at}/${enc(vhost)}`;
}

/** The error `connect()` rejects with; fails the test when it connects. */
async function refusal(url: string | string[], options: ConnectionOptions = {}): Promise<RpcError> {
  const err = await connect(url, { logger: silent, connectTimeoutMs: 5000, ...options }).then(
    async (conn) => {
      await conn.close();
      throw new Error(`expected connect(${JSON.stringify(url)}) to fail`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RpcError);
  const message = (err as RpcError).message;
  for (const u of USERS) expect(message).not.toContain(u.password);
  expect(message).not.toContain(enc(ALICE.password));
  return err as RpcError;
}

/** Connects, opens a channel and declares (then deletes) a queue: the user really is in. */
async function provesAccess(url: string, options: ConnectionOptions = {}): Promise<void> {
  const conn: Connection = await connect(url, { logger: silent, connectTimeoutMs: 5000, ...options });
  try {
    const ch = await conn.channel();
    const q = await ch.assertQueue("", { exclusive: true });
    await ch.deleteQueue(q.queue);
    await ch.close();
  } finally {
    await conn.close();
  }
}

describe.skipIf(unavailable !== undefined)("connection errors against a private node with TLS, vhosts and per-user permissions", () => {
  beforeAll(async () => {
    let certMs = 0;
    [tlsPort] = (await freePorts(1)) as [number];
    cluster = await startCluster(1, {
      // Certificates, key and definitions go into the node's own dir, which the helper
      // removes on stop, on exit, on SIGINT/SIGTERM and (from its watchdog) after a SIGKILL.
      extraConfig: (node) => {
        const t = performance.now();
        const certs = makeTestCerts(path.join(node.dir, "tls"), ["IP:127.0.0.1", "DNS:localhost"]);
        certMs = performance.now() - t;
        ca = certs.ca;
        otherCa = certs.otherCa;
        const definitionsFile = path.join(node.dir, "definitions.json");
        fs.writeFileSync(definitionsFile, definitions());
        return [
          `load_definitions = ${definitionsFile}`,
          `listeners.ssl.1 = 127.0.0.1:${tlsPort}`,
          `listeners.ssl.2 = 127.0.0.2:${tlsPort}`,
          `ssl_options.cacertfile = ${certs.caFile}`,
          `ssl_options.certfile = ${certs.certFile}`,
          `ssl_options.keyfile = ${certs.keyFile}`,
          "ssl_options.verify = verify_none",
          "ssl_options.fail_if_no_peer_cert = false",
        ].join("\n");
      },
    });
    port = cluster.nodes[0]!.port;
    console.log(
      `access.test: private node up after ${(cluster.startMs / 1000).toFixed(2)} s, certificates included (${certMs.toFixed(0)} ms); amqp ${port}, amqps ${tlsPort}`,
    );
  }, 120_000);

  afterAll(async () => {
    const t = performance.now();
    await cluster?.stop();
    console.log(`access.test: private node stopped in ${(performance.now() - t).toFixed(0)} ms`);
  });

  describe("refused by the broker", () => {
    it("a user refused a virtual host: access_refused naming the user and the vhost, and how to grant it", async () => {
      const err = await refusal(urlOf(BOB, BOB.password, "x"));
      expect(err.code).toBe("access_refused");
      expect(err.message).toBe(
        `cannot connect to RabbitMQ at amqp://bob:***@127.0.0.1:${port}/x (user "bob" has no access to virtual host "x": NOT_ALLOWED): ` +
          `grant it with: rabbitmqctl set_permissions -p x bob ".*" ".*" ".*"`,
      );
    });

    it("a virtual host that does not exist: access_refused saying so", async () => {
      const err = await refusal(urlOf(BOB, BOB.password, "nope"));
      expect(err.code).toBe("access_refused");
      expect(err.message).toBe(
        `cannot connect to RabbitMQ at amqp://bob:***@127.0.0.1:${port}/nope (virtual host "nope" does not exist: NOT_ALLOWED): ` +
          "create it with: rabbitmqctl add_vhost nope (or fix the URL's path)",
      );
    });

    it("a wrong password: access_refused saying to check the user name and password", async () => {
      const err = await refusal(urlOf(BOB, "wrong-pw", "other"));
      expect(err.code).toBe("access_refused");
      expect(err.message).toBe(
        `cannot connect to RabbitMQ at amqp://bob:***@127.0.0.1:${port}/other (login refused for user "bob": ACCESS_REFUSED): ` +
          "check the user name and password (percent-encoded in the URL)",
      );
      expect(err.message).not.toContain("wrong-pw");
    });
  });

  describe("credentials outside ASCII, percent-encoded in the URL", () => {
    it("a password with non-ASCII characters logs in", async () => {
      await provesAccess(urlOf(ALICE, ALICE.password, "x"));
    });

    it("a user name with non-ASCII characters, @ and : logs in", async () => {
      await provesAccess(urlOf(JURGEN, JURGEN.password, "x"));
    });

    it("both log in over TLS too", async () => {
      await provesAccess(urlOf(ALICE, ALICE.password, "x", { scheme: "amqps", at: tlsPort }), { tls: { ca } });
      await provesAccess(urlOf(JURGEN, JURGEN.password, "x", { scheme: "amqps", at: tlsPort }), { tls: { ca } });
    });

    it("the refused user is named decoded, and the grant command quotes it for the shell", async () => {
      const err = await refusal(urlOf(JURGEN, JURGEN.password, "other"));
      expect(err.code).toBe("access_refused");
      expect(err.message).toBe(
        `cannot connect to RabbitMQ at amqp://j%C3%BCrgen%40ops%3A1:***@127.0.0.1:${port}/other (user "jürgen@ops:1" has no access to virtual host "other": NOT_ALLOWED): ` +
          `grant it with: rabbitmqctl set_permissions -p other 'jürgen@ops:1' ".*" ".*" ".*"`,
      );
    });
  });

  describe("TLS", () => {
    it("a CA that did not sign the broker's certificate: the verify failure, and to pass the broker's CA", async () => {
      const err = await refusal(urlOf(BOB, BOB.password, "other", { scheme: "amqps", at: tlsPort }), { tls: { ca: otherCa } });
      expect(err.code).toBe("connection_lost");
      expect(err.message).toBe(
        `cannot reach RabbitMQ at amqps://bob:***@127.0.0.1:${tlsPort}/other (TLS handshake failed: self-signed certificate in certificate chain): ` +
          "pass the broker's CA in options.tls.ca",
      );
    });

    it("a host name the certificate does not name: the mismatch, and what to connect to", async () => {
      const err = await refusal(urlOf(BOB, BOB.password, "other", { scheme: "amqps", host: "127.0.0.2", at: tlsPort }), { tls: { ca } });
      expect(err.code).toBe("connection_lost");
      expect(err.message).toBe(
        `cannot reach RabbitMQ at amqps://bob:***@127.0.0.2:${tlsPort}/other (TLS handshake failed: the certificate names 127.0.0.1, not 127.0.0.2): ` +
          "connect to a host name the certificate lists, or set options.tls.servername to one",
      );
    });

    it("amqps:// to the plain AMQP port: the port does not speak TLS", async () => {
      const err = await refusal(urlOf(BOB, BOB.password, "other", { scheme: "amqps", at: port }), { tls: { ca } });
      expect(err.code).toBe("connection_lost");
      expect(err.message).toBe(
        `cannot reach RabbitMQ at amqps://bob:***@127.0.0.1:${port}/other (TLS handshake failed: the server does not speak TLS on that port): ` +
          "use amqp:// for it, or the broker's TLS port (5671 by default)",
      );
    });

    it("amqp:// to the TLS port: the port expects TLS", async () => {
      const err = await refusal(urlOf(BOB, BOB.password, "other", { at: tlsPort }));
      expect(err.code).toBe("connection_lost");
      expect(err.message).toBe(
        `cannot reach RabbitMQ at amqp://bob:***@127.0.0.1:${tlsPort}/other (the server on that port speaks TLS): use amqps:// for it`,
      );
    });
  });

  it("several addresses: each one's own failure, then what to do about each", async () => {
    const [dead] = (await freePorts(1)) as [number]; // nothing listens there
    const err = await refusal(
      [
        urlOf(BOB, BOB.password, "x"),
        urlOf(BOB, BOB.password, "other", { scheme: "amqps", at: tlsPort }),
        urlOf(BOB, "wrong-pw", "other"),
        urlOf(BOB, BOB.password, "other", { at: dead }),
      ],
      { tls: { ca: otherCa } },
    );
    expect(err.code).toBe("access_refused");
    expect(err.message).toBe(
      "cannot connect to RabbitMQ at " +
        [
          `amqp://bob:***@127.0.0.1:${port}/x (user "bob" has no access to virtual host "x": NOT_ALLOWED)`,
          `amqps://bob:***@127.0.0.1:${tlsPort}/other (TLS handshake failed: self-signed certificate in certificate chain)`,
          `amqp://bob:***@127.0.0.1:${port}/other (login refused for user "bob": ACCESS_REFUSED)`,
          `amqp://bob:***@127.0.0.1:${dead}/other (ECONNREFUSED)`,
        ].join(", ") +
        ": " +
        [
          `grant it with: rabbitmqctl set_permissions -p x bob ".*" ".*" ".*"`,
          "pass the broker's CA in options.tls.ca",
          "check the user name and password (percent-encoded in the URL)",
          "start one with `rabbitmq-server -detached` (or set AMQP_URL)",
        ].join("; "),
    );
  });
});

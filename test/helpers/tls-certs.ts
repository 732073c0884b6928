/**
 * Throwaway TLS material for tests, made with the `openssl` CLI in a dir of
 * the caller's: a CA, a server certificate it signs (for the names given), and
 * a second, unrelated CA (what a client that trusts the wrong CA has). EC
 * P-256 keys, valid for two days: about 0.1-0.3 s in all. Synchronous, so it
 * can run inside `startCluster`'s `extraConfig` and write into a node's own
 * dir (which the node helper removes however the test process ends).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** Paths of the PEM files {@link makeTestCerts} wrote. */
export interface TestCerts {
  /** The CA that signed the server certificate. */
  readonly caFile: string;
  /** The server certificate (leaf only) and its key. */
  readonly certFile: string;
  readonly keyFile: string;
  /** A CA that signed nothing of the broker's. */
  readonly otherCaFile: string;
  /** Contents of `caFile` and `otherCaFile`, for `options.tls.ca`. */
  readonly ca: Buffer;
  readonly otherCa: Buffer;
}

function openssl(dir: string, args: readonly string[]): void {
  try {
    execFileSync("openssl", args, { cwd: dir, timeout: 30_000, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    throw new Error(`openssl ${args.join(" ")}: ${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err)}`);
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function makeCa(dir: string, name: string): void {
  openssl(dir, [
    "req", "-x509", ...EC, "-days", "2", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout", `${name}.key`, "-out", `${name}.pem`,
  ]);
}

/**
 * Writes `ca.pem`, `server.pem`, `server.key` and `other-ca.pem` into `dir`
 * (created if missing). The server certificate names `altNames`, e.g.
 * `["IP:127.0.0.1", "DNS:localhost"]`.
 */
export function makeTestCerts(dir: string, altNames: readonly string[]): TestCerts {
  fs.mkdirSync(dir, { recursive: true });
  makeCa(dir, "ca");
  makeCa(dir, "other-ca");
  openssl(dir, ["req", "-new", ...EC, "-subj", "/CN=warren-test-broker", "-keyout", "server.key", "-out", "server.csr"]);
  fs.writeFileSync(path.join(dir, "server.ext"), `subjectAltName=${altNames.join(",")}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  openssl(dir, [
    "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1", "-days", "2",
    "-extfile", "server.ext", "-out", "server.pem",
  ]);
  const file = (name: string) => path.join(dir, name);
  return {
    caFile: file("ca.pem"),
    certFile: file("server.pem"),
    keyFile: file("server.key"),
    otherCaFile: file("other-ca.pem"),
    ca: fs.readFileSync(file("ca.pem")),
    otherCa: fs.readFileSync(file("other-ca.pem")),
  };
}

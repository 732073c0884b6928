/**
 * Private RabbitMQ nodes for cluster fault tests: a cluster of `n` nodes on
 * this machine, started with RabbitMQ's own scripts from the package's lib
 * dir (not the /usr/sbin wrappers, which switch user and node name), each
 * with its own node name, ports, data and log dirs, all under one temp dir.
 *
 * Isolation from the machine's default node (rabbit@localhost:5672):
 * - `RABBITMQ_CONF_ENV_FILE` is an empty file (/etc/rabbitmq/rabbitmq-env.conf
 *   sets NODENAME=rabbit@localhost), `RABBITMQ_CONFIG_FILE` and the enabled
 *   plugins file (`[].`) are ours, `HOME` holds our own `.erlang.cookie`;
 * - a private epmd on its own port (`ERL_EPMD_PORT`), so our nodes are not
 *   even registered with the default node's epmd; loopback only, as the
 *   machine's env file asks (`ERL_EPMD_ADDRESS`, `inet_dist_use_interface`);
 * - every rabbitmqctl call names its node (`-n`) and runs with our env
 *   (cookie, epmd port, and a CLI distribution port range of our own).
 * Every process is started in its own process group and killed by group, so
 * nothing else on the machine is ever signalled. Teardown runs on `stop()`, on
 * process exit and on SIGINT/SIGTERM/SIGHUP; a detached watchdog also kills
 * the nodes and removes the dir if this process dies without running either
 * (SIGKILL).
 *
 * Override the scripts dir with WARREN_RABBITMQ_SBIN.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);

/** The directory holding RabbitMQ's own `rabbitmq-server` and `rabbitmqctl`, or undefined when none is installed. */
export function rabbitSbin(): string | undefined {
  const override = process.env.WARREN_RABBITMQ_SBIN;
  if (override) return fs.existsSync(path.join(override, "rabbitmq-server")) ? override : undefined;
  const lib = "/usr/lib/rabbitmq/lib";
  let dirs: string[];
  try {
    dirs = fs.readdirSync(lib).filter((d) => d.startsWith("rabbitmq_server-"));
  } catch {
    return undefined;
  }
  const byVersion = (d: string) => d.slice("rabbitmq_server-".length).split(".").map(Number);
  dirs.sort((a, b) => {
    const [x, y] = [byVersion(a), byVersion(b)];
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  });
  const newest = dirs.at(-1);
  const sbin = newest && path.join(lib, newest, "sbin");
  return sbin && fs.existsSync(path.join(sbin, "rabbitmq-server")) ? sbin : undefined;
}

/** Why a private cluster cannot be started here, or undefined when it can. */
export function clusterUnavailable(): string | undefined {
  if (rabbitSbin() === undefined) return "no RabbitMQ installation under /usr/lib/rabbitmq/lib (set WARREN_RABBITMQ_SBIN)";
  try {
    fs.accessSync("/usr/bin/epmd", fs.constants.X_OK);
  } catch {
    if (!(process.env.PATH ?? "").split(":").some((d) => fs.existsSync(path.join(d, "epmd")))) return "no epmd on PATH";
  }
  return undefined;
}

/** One private node. */
export interface RabbitNode {
  /** 1-based position in the cluster. */
  readonly index: number;
  /** Erlang node name, e.g. `warren-1a2b-1@localhost`. */
  readonly name: string;
  /** AMQP port (127.0.0.1 only). */
  readonly port: number;
  /** Erlang distribution port. */
  readonly distPort: number;
  /** `amqp://guest:guest@127.0.0.1:<port>`. */
  readonly amqpUrl: string;
  /** Its data and log dir. */
  readonly dir: string;
  /** True while its Erlang VM runs (whether or not the rabbit app does). */
  readonly vmRunning: boolean;
  /** OS pid of its Erlang VM (beam.smp), when running. */
  readonly pid: number | undefined;
  /** `rabbitmqctl -n <name> ...args`; resolves with stdout, rejects with stderr on failure. */
  ctl(args: readonly string[], timeoutMs?: number): Promise<string>;
  /** `rabbitmq-queues -n <name> ...args`. */
  queues(args: readonly string[], timeoutMs?: number): Promise<string>;
  /** `rabbitmqctl stop_app`: the VM stays up, AMQP connections are closed, the node leaves the cluster's running set. */
  stopApp(): Promise<void>;
  /** `rabbitmqctl start_app`, then waits until the node has started. */
  startApp(): Promise<void>;
  /** SIGKILL to its Erlang VM (and the launcher script): a crash, nothing flushed, connections reset. */
  kill9(): Promise<void>;
  /** Starts its VM again (killing it first if it still runs); resolves once the broker has started and rejoined. */
  restart(): Promise<void>;
  /** Tail of its log file, for diagnostics. */
  logTail(lines?: number): string;
}

/** A running cluster. */
export interface RabbitCluster {
  readonly nodes: readonly RabbitNode[];
  /** The temp dir everything lives in. */
  readonly dir: string;
  /** How long `startCluster` took, in ms. */
  readonly startMs: number;
  /** The AMQP URLs of the nodes, `first` first, then the others in order: what `connect([...])` takes. */
  urls(first?: RabbitNode): string[];
  /** The node a queue's leader is on (asked of any node whose app runs); undefined if the queue is unknown. */
  leaderOf(queue: string): Promise<RabbitNode | undefined>;
  /** The leaders' nodes of several queues, with one `rabbitmqctl list_queues`. */
  leadersOf(queues: readonly string[]): Promise<(RabbitNode | undefined)[]>;
  /** Raft state of a quorum queue per member, from `rabbitmq-queues quorum_status` on `via` (or any running node). */
  quorumStatus(queue: string, via?: RabbitNode): Promise<{ node: string; state: string; term: number }[]>;
  /** Kills every node, the private epmd and the watchdog, and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Part of the node names and temp dir; random by default. */
  tag?: string;
  /**
   * How nodes 2..n join node 1:
   * - `join`: all nodes boot in parallel as standalone nodes, then nodes 2..n
   *   run `stop_app`, `join_cluster <node 1>`, `start_app`;
   * - `config`: node 1 boots; nodes 2..n boot in parallel with it but with
   *   classic-config peer discovery naming node 1 and only join once it runs.
   * @default "config" (measured faster; see the report in test/cluster)
   */
  formation?: "join" | "config";
  /** Extra Erlang VM flags for every node (`RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS`). */
  erlArgs?: string;
  /** Give up starting after this long. @default 120000 */
  timeoutMs?: number;
  /** Print progress lines. @default false */
  verbose?: boolean;
  /**
   * More `rabbitmq.conf` lines for a node (TLS listeners, `load_definitions`,
   * …), appended after the helper's own; called once per node before it first
   * boots. Ports for extra listeners: see {@link freePorts}.
   */
  extraConfig?: (node: RabbitNode) => string;
}

const allocated = new Set<number>();

/** Resolves whether 127.0.0.1:`port` can be listened on now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * `count` consecutive free ports below the kernel's ephemeral range (so no
 * outgoing connection is handed one meanwhile), never 5672/25672/4369 or a
 * port this process handed out before.
 */
export async function freePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * (32_000 - 20_000 - count));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if (ports.some((p) => allocated.has(p) || p === 25672 || p === 5672 || p === 4369 || p === 15672)) continue;
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) {
      for (const p of ports) allocated.add(p);
      return ports;
    }
  }
  throw new Error("rabbit-nodes: found no free ports");
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Live clusters of this process, for the exit handlers. */
const live = new Set<ClusterImpl>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on("exit", () => {
    for (const c of live) c.stopSync();
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const handler = () => {
      for (const c of live) c.stopSync();
      process.removeListener(signal, handler);
      // Re-raise: with our handler gone, the default action (or other handlers) applies.
      process.kill(process.pid, signal);
    };
    process.on(signal, handler);
  }
  // A test worker (vitest's forks pool) whose runner is gone, e.g. `timeout` sent SIGTERM to the runner
  // alone: the worker is orphaned and may run on for long; stop the nodes as soon as its channel closes.
  if (process.send !== undefined) {
    process.once("disconnect", () => {
      for (const c of live) c.stopSync();
    });
  }
}

/** Kills a process group we started; ignores one that is gone. */
function killGroup(pgid: number | undefined): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    /* already gone */
  }
}

/** Whether `pid` runs (a zombie, killed but not yet reaped by whoever adopted it, does not). */
function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

class NodeImpl implements RabbitNode {
  readonly amqpUrl: string;
  readonly dir: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #output = "";

  constructor(
    readonly cluster: ClusterImpl,
    readonly index: number,
    readonly name: string,
    readonly port: number,
    readonly distPort: number,
  ) {
    this.amqpUrl = `amqp://guest:guest@127.0.0.1:${port}`;
    this.dir = path.join(cluster.dir, `n${index}`);
    for (const d of ["mnesia", "log", "plugins-expand"]) fs.mkdirSync(path.join(this.dir, d), { recursive: true });
  }

  get vmRunning(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  get pid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dir, "pid"), "utf8").trim());
      return this.vmRunning && alive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  get pgid(): number | undefined {
    return this.vmRunning ? this.#child?.pid : undefined;
  }

  /** The environment of the server scripts for this node. */
  serverEnv(configFile: string): NodeJS.ProcessEnv {
    return {
      ...this.cluster.baseEnv,
      RABBITMQ_NODENAME: this.name,
      RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_MNESIA_BASE: path.join(this.dir, "mnesia"),
      RABBITMQ_LOG_BASE: path.join(this.dir, "log"),
      RABBITMQ_PID_FILE: path.join(this.dir, "pid"),
      RABBITMQ_PLUGINS_EXPAND_DIR: path.join(this.dir, "plugins-expand"),
      RABBITMQ_CONFIG_FILE: configFile,
      RABBITMQ_ADVANCED_CONFIG_FILE: path.join(this.dir, "advanced.config"), // absent on purpose
      RABBITMQ_CONFIG_FILES: path.join(this.cluster.dir, "conf.d"), // an empty dir instead of /etc/rabbitmq/conf.d
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(this.cluster.dir, "enabled_plugins"),
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: this.cluster.erlArgs,
    };
  }

  /** Starts the VM and the broker; resolves when the broker says it started (`completed with N plugins`). */
  async boot(timeoutMs: number): Promise<void> {
    if (this.vmRunning) throw new Error(`${this.name} is already running`);
    const configFile = path.join(this.dir, "rabbitmq.conf");
    this.#output = "";
    const child = spawn(path.join(this.cluster.sbin, "rabbitmq-server"), [], {
      env: this.serverEnv(configFile),
      cwd: this.dir,
      detached: true, // own process group: killed as a group, and never by anyone's broad signal
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child = child;
    this.cluster.writePgids();
    this.#exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    void this.#exited.then(() => this.cluster.writePgids());
    const onData = (d: Buffer) => {
      this.#output += d.toString();
      if (this.#output.length > 200_000) this.#output = this.#output.slice(-100_000);
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`${this.name} did not start within ${timeoutMs} ms:\n${this.#output.slice(-3000)}`)), timeoutMs);
      let failing = false;
      const check = () => {
        if (failing) return;
        if (/Starting broker\.\.\. completed/.test(this.#output)) done();
        else if (!failing && /BOOT FAILED|init terminating/.test(this.#output)) {
          failing = true;
          // The reason follows the banner: wait for the VM to exit (or a moment) to have all of it.
          child.off("exit", exited);
          const report = () => done(new Error(`${this.name} failed to boot:\n${bootError(this.#output)}`));
          const t = setTimeout(report, 3000);
          child.once("exit", () => {
            clearTimeout(t);
            report();
          });
        }
      };
      const exited = () => done(new Error(`${this.name} exited while booting:\n${this.#output.slice(-3000)}`));
      const done = (err?: Error) => {
        clearTimeout(timer);
        child.stdout!.off("data", check);
        child.stderr!.off("data", check);
        child.off("exit", exited);
        if (err) reject(err);
        else resolve();
      };
      child.stdout!.on("data", check);
      child.stderr!.on("data", check);
      child.once("exit", exited);
    });
  }

  #cli(script: string, args: readonly string[], timeoutMs: number): Promise<string> {
    return exec(path.join(this.cluster.sbin, script), ["-n", this.name, ...args], { env: this.cluster.baseEnv, timeout: timeoutMs, maxBuffer: 16 << 20 }).then(
      ({ stdout }) => stdout,
      (err: { stderr?: string; stdout?: string; message: string }) => {
        throw new Error(`${script} -n ${this.name} ${args.join(" ")}: ${(err.stderr || err.stdout || err.message).trim().split("\n").slice(0, 6).join(" | ")}`);
      },
    );
  }

  ctl(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    return this.#cli("rabbitmqctl", args, timeoutMs);
  }

  queues(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    return this.#cli("rabbitmq-queues", args, timeoutMs);
  }

  async stopApp(): Promise<void> {
    await this.ctl(["stop_app"]);
  }

  async startApp(): Promise<void> {
    await this.ctl(["start_app"], 120_000);
    await this.ctl(["await_startup", "--timeout", "120"], 130_000);
  }

  async kill9(): Promise<void> {
    const child = this.#child;
    if (!this.vmRunning || child?.pid === undefined) return;
    const beam = this.pid;
    killGroup(child.pid);
    await this.#exited;
    // The VM is in the group, but make sure it is gone before anyone restarts it.
    for (let i = 0; i < 200 && alive(beam); i++) await sleep(10);
    this.cluster.writePgids();
  }

  async restart(): Promise<void> {
    await this.kill9();
    await this.boot(this.cluster.timeoutMs);
  }

  /** Kills synchronously (exit handler). */
  killSync(): void {
    if (this.vmRunning) killGroup(this.#child?.pid);
  }

  logTail(lines = 40): string {
    try {
      return fs.readFileSync(path.join(this.dir, "log", `${this.name}.log`), "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return this.#output.split("\n").slice(-lines).join("\n");
    }
  }
}

/** The part of a node's output that says why it did not boot. */
function bootError(output: string): string {
  const at = output.search(/BOOT FAILED/);
  return (at >= 0 ? output.slice(at) : output).slice(0, 4000);
}

class ClusterImpl implements RabbitCluster {
  nodes: NodeImpl[] = [];
  startMs = 0;
  baseEnv: NodeJS.ProcessEnv = {};
  #epmd: ChildProcess | undefined;
  #watchdog: ChildProcess | undefined;
  #stopped = false;

  constructor(
    readonly dir: string,
    readonly sbin: string,
    readonly erlArgs: string,
    readonly timeoutMs: number,
  ) {}

  urls(first?: RabbitNode): string[] {
    const ordered = first === undefined ? this.nodes : [first, ...this.nodes.filter((n) => n !== first)];
    return ordered.map((n) => n.amqpUrl);
  }

  /** Records the process groups to kill in the watchdog's file. */
  writePgids(): void {
    if (this.#stopped) return;
    const groups = [this.#epmd?.pid, ...this.nodes.map((n) => n.pgid)].filter((p): p is number => p !== undefined);
    try {
      fs.writeFileSync(path.join(this.dir, "pgids.tmp"), groups.join(" ") + "\n");
      fs.renameSync(path.join(this.dir, "pgids.tmp"), path.join(this.dir, "pgids"));
    } catch {
      /* the dir is being removed */
    }
  }

  async startEpmd(port: number): Promise<void> {
    const epmd = spawn("epmd", ["-port", String(port), "-address", "127.0.0.1"], { detached: true, stdio: "ignore", env: this.baseEnv });
    this.#epmd = epmd;
    this.writePgids();
    for (let i = 0; i < 500; i++) {
      if (epmd.exitCode !== null) throw new Error(`epmd on port ${port} exited with ${epmd.exitCode}`);
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect({ port, host: "127.0.0.1" }, () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(false));
      });
      if (up) return;
      await sleep(10);
    }
    throw new Error(`epmd on port ${port} did not listen`);
  }

  /** A detached shell that kills our process groups and removes the dir once this process is gone (sh may be dash: `kill -9 -PGID`, no `--`). */
  startWatchdog(): void {
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = [
      `while kill -0 ${process.pid} 2>/dev/null && [ -d ${q(this.dir)} ]; do sleep 1; done`,
      `[ -d ${q(this.dir)} ] || exit 0`,
      `for g in $(cat ${q(path.join(this.dir, "pgids"))} 2>/dev/null); do kill -9 -$g 2>/dev/null; done`,
      `sleep 1; rm -rf ${q(this.dir)}`,
    ].join("\n");
    this.#watchdog = spawn("sh", ["-c", script], { detached: true, stdio: "ignore" });
    this.#watchdog.unref();
  }

  async leaderOf(queue: string): Promise<RabbitNode | undefined> {
    return (await this.leadersOf([queue]))[0];
  }

  async leadersOf(queues: readonly string[]): Promise<(RabbitNode | undefined)[]> {
    let last: unknown;
    for (const via of this.nodes.filter((n) => n.vmRunning)) {
      let rows: { name: string; leader?: string }[];
      try {
        rows = JSON.parse(await via.ctl(["list_queues", "name", "leader", "--formatter", "json", "--quiet"])) as typeof rows;
      } catch (err) {
        last = err;
        continue;
      }
      return queues.map((queue) => {
        const leader = rows.find((r) => r.name === queue)?.leader;
        return leader === undefined ? undefined : this.nodes.find((n) => n.name === leader);
      });
    }
    throw new Error(`no node could list queues: ${(last as Error)?.message}`);
  }

  async quorumStatus(queue: string, via?: RabbitNode): Promise<{ node: string; state: string; term: number }[]> {
    const asked = via ?? this.nodes.find((n) => n.vmRunning);
    if (!asked) throw new Error("no node runs");
    const out = await asked.queues(["quorum_status", queue, "--formatter", "json", "--quiet"]);
    return (JSON.parse(out) as Record<string, unknown>[]).map((r) => ({
      node: String(r["Node Name"]),
      state: String(r["Raft State"]),
      term: Number(r["Term"]),
    }));
  }

  async stop(): Promise<void> {
    const waits = this.nodes.map(async (n) => n.kill9());
    await Promise.all(waits);
    this.stopSync();
  }

  stopSync(): void {
    if (this.#stopped) return;
    for (const n of this.nodes) n.killSync();
    killGroup(this.#epmd?.pid);
    this.#stopped = true;
    // WARREN_CLUSTER_KEEP_LOGS=<dir>: keep the nodes' logs there, for diagnosis.
    const keep = process.env.WARREN_CLUSTER_KEEP_LOGS;
    if (keep) {
      for (const n of this.nodes) {
        try {
          fs.cpSync(path.join(n.dir, "log"), path.join(keep, path.basename(this.dir), `n${n.index}`), { recursive: true });
        } catch {
          /* nothing to keep */
        }
      }
    }
    live.delete(this);
    try {
      fs.rmSync(this.dir, { recursive: true, force: true });
    } catch {
      /* the watchdog removes it */
    }
    try {
      if (this.#watchdog?.pid !== undefined) process.kill(-this.#watchdog.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

/** Config of a node (its AMQP listener comes from RABBITMQ_NODE_IP_ADDRESS/RABBITMQ_NODE_PORT): logs to file only, and peer discovery for `formation: "config"`. */
function nodeConfig(seed: string | undefined): string {
  const lines = [
    "log.console = false",
    "log.file.level = info",
    // Nothing of ours needs them, and they cost CPU on a shared 2-core machine.
    "collect_statistics = none",
  ];
  if (seed !== undefined) {
    lines.push("cluster_formation.peer_discovery_backend = classic_config", `cluster_formation.classic_config.nodes.1 = ${seed}`);
    // The seed runs (or will soon): retry joining it rather than booting alone.
    lines.push("cluster_formation.discovery_retry_limit = 240", "cluster_formation.discovery_retry_interval = 250");
  }
  return lines.join("\n") + "\n";
}

/**
 * Makes sure every feature flag is enabled on every node of a cluster. A node
 * that joins the seed while the seed is still enabling its feature flags
 * (nodes booting in parallel) can end up with some disabled, e.g.
 * `quorum_queue`, and then refuses to declare quorum queues ("the
 * corresponding feature flag is disabled"; seen once in ~10 starts): such a
 * node enables them itself (`enable_feature_flag all` on it), and the result
 * is checked. Costs one rabbitmqctl call per node, in parallel.
 */
async function ensureFeatureFlags(nodes: readonly NodeImpl[], log: (m: string) => void): Promise<void> {
  const notEnabled = async (node: NodeImpl) => {
    const rows = JSON.parse(await node.ctl(["list_feature_flags", "name", "state", "--formatter", "json", "--quiet"])) as { name: string; state: string }[];
    return rows.filter((r) => r.state !== "enabled").map((r) => `${r.name}=${r.state}`);
  };
  await Promise.all(
    nodes.map(async (node) => {
      const before = await notEnabled(node);
      if (before.length === 0) return;
      log(`${node.name}: feature flags not enabled after joining: ${before.join(", ")}; enabling them`);
      await node.ctl(["enable_feature_flag", "all"]);
      const after = await notEnabled(node);
      if (after.length > 0) throw new Error(`rabbit-nodes: ${node.name} still has feature flags not enabled: ${after.join(", ")}`);
    }),
  );
}

/**
 * Starts a private cluster of `n` nodes (default 3), all clustered, and
 * resolves once every node's broker runs. Prints how long it took when
 * `verbose`. Call `stop()` when done (an exit handler and a watchdog also
 * clean up).
 */
export async function startCluster(n = 3, options: ClusterOptions = {}): Promise<RabbitCluster> {
  const started = performance.now();
  const sbin = rabbitSbin();
  if (sbin === undefined) throw new Error(`rabbit-nodes: ${clusterUnavailable()}`);
  const tag = options.tag ?? randomBytes(2).toString("hex");
  const formation = options.formation ?? "config";
  const timeoutMs = options.timeoutMs ?? 120_000;
  const log = (m: string) => options.verbose && console.log(`[rabbit-nodes ${tag}] ${((performance.now() - started) / 1000).toFixed(2)}s ${m}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `warren-rabbit-${tag}-`));
  // Defaults from the Debian env file are for the machine's node: we want loopback, but nothing else of it.
  const erlArgs = ["-kernel inet_dist_use_interface {127,0,0,1}", options.erlArgs ?? ""].join(" ").trim();
  const cluster = new ClusterImpl(dir, sbin, erlArgs, timeoutMs);
  live.add(cluster);
  hookExit();
  try {
    const home = path.join(dir, "home");
    fs.mkdirSync(home);
    fs.mkdirSync(path.join(dir, "conf.d"));
    fs.writeFileSync(path.join(home, ".erlang.cookie"), randomBytes(24).toString("hex").toUpperCase(), { mode: 0o400 });
    fs.writeFileSync(path.join(dir, "rabbitmq-env.conf"), "# empty on purpose: /etc/rabbitmq/rabbitmq-env.conf is for the machine's own node\n");
    fs.writeFileSync(path.join(dir, "enabled_plugins"), "[].\n");
    const [epmdPort, ...rest] = await freePorts(1 + 12);
    const ctlPorts = rest.slice(0, 12);
    const nodePorts = await Promise.all(Array.from({ length: n }, () => freePorts(2)));
    // A clean environment: nothing RABBITMQ_* or ERL_* of ours leaks in, and none of the machine's.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("RABBITMQ_") && !k.startsWith("ERL_")));
    cluster.baseEnv = {
      ...inherited,
      HOME: home,
      ERL_EPMD_PORT: String(epmdPort),
      ERL_EPMD_ADDRESS: "127.0.0.1",
      ERL_FLAGS: "-kernel inet_dist_use_interface {127,0,0,1}",
      RABBITMQ_CONF_ENV_FILE: path.join(dir, "rabbitmq-env.conf"),
      RABBITMQ_CTL_DIST_PORT_MIN: String(ctlPorts[0]),
      RABBITMQ_CTL_DIST_PORT_MAX: String(ctlPorts.at(-1)),
      LANG: "C.UTF-8",
      LC_ALL: "C.UTF-8",
    };
    cluster.startWatchdog();
    await cluster.startEpmd(epmdPort!);
    log(`epmd on ${epmdPort}, dir ${dir}`);
    cluster.nodes = nodePorts.map(([port, distPort], i) => new NodeImpl(cluster, i + 1, `warren-${tag}-${i + 1}@localhost`, port!, distPort!));
    const seed = cluster.nodes[0]!;
    for (const node of cluster.nodes) {
      const joinsSeed = formation === "config" && node !== seed;
      const extra = options.extraConfig?.(node) ?? "";
      fs.writeFileSync(path.join(node.dir, "rabbitmq.conf"), nodeConfig(joinsSeed ? seed.name : undefined) + extra + (extra.endsWith("\n") || extra === "" ? "" : "\n"));
    }
    await Promise.all(
      cluster.nodes.map(async (node) => {
        await node.boot(timeoutMs);
        log(`${node.name} booted (amqp ${node.port}, dist ${node.distPort})`);
      }),
    );
    if (formation === "join") {
      for (const node of cluster.nodes.slice(1)) {
        await node.stopApp();
        await node.ctl(["join_cluster", seed.name]);
        await node.startApp();
        log(`${node.name} joined ${seed.name}`);
      }
    }
    // Every node must see all the others running (a single node has none: its check, ~2 s of rabbitmqctl, is skipped).
    if (n > 1) {
      await ensureFeatureFlags(cluster.nodes, log);
      const status = JSON.parse(await seed.ctl(["cluster_status", "--formatter", "json"])) as { running_nodes?: string[] };
      const running = new Set(status.running_nodes ?? []);
      const missing = cluster.nodes.filter((x) => !running.has(x.name)).map((x) => x.name);
      if (missing.length > 0) throw new Error(`rabbit-nodes: ${missing.join(", ")} not in the cluster of ${seed.name}: ${JSON.stringify(status)}`);
    }
    cluster.startMs = performance.now() - started;
    log(`cluster of ${n} running after ${(cluster.startMs / 1000).toFixed(2)} s (formation ${formation})`);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

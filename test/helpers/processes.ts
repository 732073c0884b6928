/** Child processes for scale-out and fault tests: RPC servers and event subscribers. */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { onTeardown } from "./broker.js";

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/** A running child; `output` accumulates its stdout. */
export interface ChildRun {
  readonly child: ChildProcess;
  output: string;
  /** SIGTERM, then resolves with the number after `<word> ` in its last words (e.g. `served 3`). */
  stop(): Promise<number>;
}

/** Starts `script` with `args` under tsx; resolves once it prints `ready`. Killed after the test. */
async function startChild(script: string, args: readonly string[], countWord: string): Promise<ChildRun> {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const proc: ChildRun = {
    child,
    output: "",
    stop: () =>
      new Promise<number>((resolve, reject) => {
        child.once("exit", () => {
          const m = new RegExp(`${countWord} (\\d+)`).exec(proc.output);
          if (m) resolve(Number(m[1]));
          else reject(new Error(`child process exited without a count: ${proc.output}`));
        });
        child.kill("SIGTERM");
      }),
  };
  child.stdout!.on("data", (d: Buffer) => (proc.output += d.toString()));
  onTeardown(() => child.exitCode === null && child.kill("SIGKILL"));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("child process did not start within 20 s")), 20_000);
    const check = () => {
      if (proc.output.includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", check);
    child.once("exit", (code) => reject(new Error(`child process exited with ${code}`)));
  });
  return proc;
}

/** A Calculator server process on `queue`; `stop()` resolves with the calls it served. */
export type ServerProcess = ChildRun;

/** Starts a Calculator server process on `queue`; resolves once it consumes. */
export function startServerProcess(queue: string, prefetch = 8, delayMs = 0): Promise<ServerProcess> {
  return startChild(here("./calc-server.ts"), [queue, String(prefetch), String(delayMs)], "served");
}

/** Starts an `order_placed` subscriber process in `group` on `exchange`; `stop()` resolves with the events it handled. */
export function startSubscriberProcess(exchange: string, group: string, delayMs = 0): Promise<ChildRun> {
  return startChild(here("./order-subscriber.ts"), [exchange, group, String(delayMs)], "handled");
}

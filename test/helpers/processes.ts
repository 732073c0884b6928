/** Child server processes for scale-out and fault tests. */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { onTeardown } from "./broker.js";

const script = fileURLToPath(new URL("./calc-server.ts", import.meta.url));

/** A running `calc-server.ts` child; `output` accumulates its stdout. */
export interface ServerProcess {
  readonly child: ChildProcess;
  output: string;
  /** SIGTERM, then resolves with the number of calls it served. */
  stop(): Promise<number>;
}

/** Starts a Calculator server process on `queue`; resolves once it consumes. Killed after the test. */
export async function startServerProcess(queue: string, prefetch = 8, delayMs = 0): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", script, queue, String(prefetch), String(delayMs)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const proc: ServerProcess = {
    child,
    output: "",
    stop: () =>
      new Promise<number>((resolve, reject) => {
        child.once("exit", () => {
          const m = /served (\d+)/.exec(proc.output);
          if (m) resolve(Number(m[1]));
          else reject(new Error(`server process exited without a count: ${proc.output}`));
        });
        child.kill("SIGTERM");
      }),
  };
  child.stdout!.on("data", (d: Buffer) => (proc.output += d.toString()));
  onTeardown(() => child.exitCode === null && child.kill("SIGKILL"));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server process did not start within 20 s")), 20_000);
    const check = () => {
      if (proc.output.includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", check);
    child.once("exit", (code) => reject(new Error(`server process exited with ${code}`)));
  });
  return proc;
}

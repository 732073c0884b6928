/** Child processes of the benchmarks: a server child's side of the IPC, and stopping children. */
import type { ChildProcess } from "node:child_process";

/**
 * Runs in a server child: starts the server, tells the parent `{ ready: true }`
 * (or `{ error }`) over IPC, and closes it on the message "stop". Exits at
 * once when the parent disconnects without "stop" (it was killed).
 */
export async function serveInChild(start: () => Promise<{ close(): Promise<unknown> }>): Promise<void> {
  let stopping = false;
  // The parent went away without "stop" (killed): exit rather than linger consuming the broker's queues.
  process.once("disconnect", () => {
    if (!stopping) process.exit(1);
  });
  try {
    const server = await start();
    process.on("message", (m) => {
      if (m !== "stop") return;
      stopping = true;
      void server
        .close()
        .catch(() => {})
        .finally(() => process.disconnect?.());
    });
    process.send!({ ready: true });
  } catch (err) {
    process.send!({ error: (err as Error).stack ?? String(err) });
    process.exitCode = 1;
    process.disconnect?.();
  }
}

/** Asks each child to stop, and kills one that has not exited 5 s later. */
export function stopChildren(children: Iterable<ChildProcess>): Promise<void[]> {
  return Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || !c.connected) return resolve();
          const t = setTimeout(() => (c.kill(), resolve()), 5000);
          c.once("exit", () => (clearTimeout(t), resolve()));
          c.send("stop");
        }),
    ),
  );
}

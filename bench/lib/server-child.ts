/**
 * Child-process entry: serves one implementation's queues so the servers do
 * not share an event loop with the benchmark's clients.
 *   argv: <impl> <url> <addQueue> <echoQueue>
 * Sends {ready: true} (or {error}) over IPC; stops on the message "stop".
 */
import { SERVERS, type ImplName } from "./impls.js";

const [impl, url, add, echo] = process.argv.slice(2) as [ImplName, string, string, string];
try {
  const server = await SERVERS[impl](url, { add, echo });
  process.on("message", (m) => {
    if (m !== "stop") return;
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

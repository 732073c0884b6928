/**
 * Child-process entry: serves one implementation's queues so the servers do
 * not share an event loop with the benchmark's clients.
 *   argv: <impl> <url> <addQueue> <echoQueue>
 * Sends {ready: true} (or {error}) over IPC; stops on the message "stop".
 */
import { serveInChild } from "./child.js";
import { SERVERS, type ImplName } from "./impls.js";

const [impl, url, add, echo] = process.argv.slice(2) as [ImplName, string, string, string];
await serveInChild(() => SERVERS[impl](url, { add, echo }));

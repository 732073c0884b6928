#!/usr/bin/env node
/** Entry point of the `warren` bin: the command line of codegen/cli/main.ts on this process's streams. */
import { runWarren } from "./cli/main.js";

process.exitCode = await runWarren(process.argv.slice(2), {
  cwd: process.cwd(),
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  stdin: async () => {
    if (process.stdin.isTTY) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  },
  // Listened to only by a command that waits for it (serve): elsewhere Ctrl-C ends the process as usual.
  interrupted: () => new Promise<string>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => resolve(signal));
  }),
});

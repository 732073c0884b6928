#!/usr/bin/env node
/** Entry point of `npm run codegen` and the `warren-codegen` bin. */
import { runCli } from "./run.js";

process.exitCode = await runCli(process.argv.slice(2), {
  cwd: process.cwd(),
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
});

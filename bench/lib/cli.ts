/** What every benchmark entry point reads first: where the repository is, and its `--name value` options. */
import path from "node:path";
import { fileURLToPath } from "node:url";

/** For the benchmark at `moduleUrl` (its `import.meta.url`): its directory, the repository root whether it runs as tsc output in dist-bench/ or through tsx, and which of the two. */
export function benchRoot(moduleUrl: string): { here: string; root: string; compiled: boolean } {
  const here = path.dirname(fileURLToPath(moduleUrl));
  const compiled = moduleUrl.endsWith(".js");
  return { here, root: path.resolve(here, compiled ? "../.." : ".."), compiled };
}

/** The value after `--name` in `args`, else `fallback`. */
export function option(args: readonly string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
}

/** The broker the benchmarks use: `AMQP_URL`, else the local default. */
export const BENCH_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

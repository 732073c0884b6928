import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { connect } from "../../src/index.js";

const exec = promisify(execFile);

/** Names (queues, exchanges) that this test run created and did not delete; see `uniqueName`. */
async function leftovers(prefix: string): Promise<string[]> {
  const names: string[] = [];
  for (const what of ["list_queues", "list_exchanges"]) {
    const { stdout } = await exec("rabbitmqctl", [what, "name", "--quiet", "--no-table-headers"]);
    names.push(...stdout.split("\n").filter((n) => n.startsWith(prefix)));
  }
  return names;
}

/**
 * Fails the whole run at once, in one clear line, when the broker is unreachable.
 * Tags this run's names (test workers inherit the variable) and, at the end, fails
 * the run if any queue or exchange of it is left on the broker.
 */
export default async function setup(): Promise<() => Promise<void>> {
  try {
    const conn = await connect(undefined, { connectTimeoutMs: 3000 });
    await conn.close();
  } catch (err) {
    // One clear line instead of a stack: this is a setup problem, not a test failure.
    console.error(`\nwarren tests need RabbitMQ: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const run = randomBytes(3).toString("hex");
  process.env.WARREN_TEST_RUN = run;
  return async () => {
    let left: string[];
    try {
      left = await leftovers(`__test_${run}_`);
    } catch {
      return; // no rabbitmqctl here (a remote broker): nothing to check with
    }
    if (left.length > 0) throw new Error(`tests left ${left.length} queue(s)/exchange(s) on the broker: ${left.join(", ")}`);
  };
}

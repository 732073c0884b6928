import { connect } from "../../src/index.js";

/** Fails the whole run at once, in one clear line, when the broker is unreachable. */
export default async function setup(): Promise<void> {
  try {
    const conn = await connect(undefined, { connectTimeoutMs: 3000 });
    await conn.close();
  } catch (err) {
    // One clear line instead of a stack: this is a setup problem, not a test failure.
    console.error(`\nwarren tests need RabbitMQ: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

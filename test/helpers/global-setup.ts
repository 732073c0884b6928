import { connect } from "../../src/index.js";

/** Fails the whole run at once, in one clear line, when the broker is unreachable. */
export default async function setup(): Promise<void> {
  try {
    const conn = await connect(undefined, { connectTimeoutMs: 3000 });
    await conn.close();
  } catch (err) {
    throw new Error(`integration tests need RabbitMQ: ${(err as Error).message}`);
  }
}

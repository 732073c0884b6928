/** What a benchmark's results record about the software it measured. */
import { readFile } from "node:fs/promises";
import path from "node:path";
import amqp from "amqplib";

/** The broker's product and version, as it announces them on connecting to `url`. */
export async function brokerVersion(url: string): Promise<string> {
  const conn = await amqp.connect(url);
  const props = (conn as unknown as { connection: { serverProperties?: { version?: string; product?: string } } }).connection.serverProperties;
  await conn.close();
  return `${props?.product ?? "RabbitMQ"} ${props?.version ?? "?"}`;
}

/** The installed version of package `name` under `root`/node_modules, or "not installed". */
export async function pkgVersion(root: string, name: string): Promise<string> {
  try {
    return JSON.parse(await readFile(path.join(root, "node_modules", name, "package.json"), "utf8")).version as string;
  } catch {
    return "not installed";
  }
}

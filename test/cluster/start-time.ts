/**
 * Starts a private cluster, prints how long it took, and stops it.
 * Usage: npx tsx test/cluster/start-time.ts [nodes=3] [join|config] [repetitions=1]
 */
import { startCluster } from "../helpers/rabbit-nodes.js";

const n = Number(process.argv[2] ?? 3);
const formation = (process.argv[3] ?? "config") as "join" | "config";
const reps = Number(process.argv[4] ?? 1);
for (let i = 0; i < reps; i++) {
  const cluster = await startCluster(n, { formation, verbose: true });
  const t = performance.now();
  await cluster.stop();
  console.log(`start ${(cluster.startMs / 1000).toFixed(2)} s, stop ${((performance.now() - t) / 1000).toFixed(2)} s (${n} nodes, ${formation})`);
}

import { defineConfig } from "vitest/config";

/**
 * The cluster fault tests alone: `npx vitest run --config vitest.cluster.config.ts`.
 * They start their own private 3-node RabbitMQ cluster (test/helpers/rabbit-nodes.ts)
 * and need no broker on 5672, so there is no global setup. One file, one fork;
 * long hooks (the cluster start and each fault case run in `beforeAll`).
 */
export default defineConfig({
  test: {
    include: ["test/cluster/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 180_000,
  },
});

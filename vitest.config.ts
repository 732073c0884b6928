import { defineConfig } from "vitest/config";

/**
 * `npm test` runs every project; `npx vitest run test/unit` (or `--project unit`) only one.
 *
 * - unit, codegen: no broker (unit tests use test/helpers/fake-channel-source.ts).
 * - integration: the real broker. Only this project and conformance-broker have the global
 *   setup that checks the broker is reachable (and that no queue of the run is left on it): a
 *   project's global setup runs only when one of its files is in the run.
 * - conformance: test/conformance/ on the in-memory test kit (src/testing/), no broker: the shared
 *   suite's `*.memory.test.ts` run and the kit's own fault tests; and test/examples/ (the README's
 *   "Testing your service" example).
 * - conformance-broker: the same shared suite on RabbitMQ (`*.rabbitmq.test.ts`), with the
 *   integration project's global setup. `npx vitest run test/conformance` runs both.
 * - cluster: private RabbitMQ nodes the files start themselves, no broker on 5672
 *   (see vitest.cluster.config.ts); long hooks.
 */
export default defineConfig({
  test: {
    // Fault tests close broker connections and stop broker apps: one file at a time.
    // Vitest applies this to the whole run, every project (its worker pools are shared).
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      // One child process for all unit files (each file still gets fresh modules): they take milliseconds, starting a process each does not.
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"], poolOptions: { forks: { singleFork: true } } } },
      { extends: true, test: { name: "codegen", include: ["test/codegen/**/*.test.ts"] } },
      {
        extends: true,
        test: { name: "integration", include: ["test/integration/**/*.test.ts"], globalSetup: ["test/helpers/global-setup.ts"] },
      },
      {
        extends: true,
        test: { name: "conformance", include: ["test/conformance/**/*.test.ts", "test/examples/**/*.test.ts"], exclude: ["test/conformance/**/*.rabbitmq.test.ts"], poolOptions: { forks: { singleFork: true } } },
      },
      {
        extends: true,
        test: { name: "conformance-broker", include: ["test/conformance/**/*.rabbitmq.test.ts"], globalSetup: ["test/helpers/global-setup.ts"] },
      },
      { extends: true, test: { name: "cluster", include: ["test/cluster/**/*.test.ts"], hookTimeout: 180_000 } },
    ],
  },
});

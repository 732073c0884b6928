/** A plain script (no test runner) whose call on the test kit ends in a timeout: it must print the outcome and exit 0. */
import { createTestKit } from "../../src/testing/index.js";
import { Calculator, CalculatorClient, serveCalculator } from "../../generated/calculator/index.js";
import { calculatorHandlers } from "./calculator-handlers.js";

const kit = createTestKit();
await serveCalculator(kit.server(), calculatorHandlers);
const calc = new CalculatorClient(await kit.client());
kit.faults.on(Calculator.methods.add).once().noReply();
const code = await calc.add({ a: 1, b: 2 }, { timeoutMs: 100 }).then(() => "ok", (e: { code: string }) => e.code);
console.log(`outcome ${code}`);
await kit.close();

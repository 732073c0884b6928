/** The `warren` command line as a whole: help, version, and the generator's commands under the same bin. */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { onTeardown } from "../helpers/broker.js";
import { runCli } from "../../codegen/run.js";
import { greeterContract, greeterNames, oneLine, ROOT, tempSchemas, warren, warrenHere, type Run } from "../cli/run.js";

/** `warren-codegen args…` in this process (codegen/run.ts, what its bin runs). */
async function codegenHere(args: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, { cwd: ROOT, out: (l) => (stdout += `${l}\n`), err: (l) => (stderr += `${l}\n`) });
  return { code, stdout, stderr };
}

/** A usage line without its program name and help hint: what the two bins must word alike. */
const body = (line: string) => line.replace(/^(warren codegen|warren-codegen|warren): /, "").replace(/ \(see: [^)]*\)$/, "");

describe("warren (the command line)", () => {
  it("--help lists every command and the exit statuses; --version; no command prints the help and exits 2", async () => {
    const [help, version] = await Promise.all([warren(["--help"]), warrenHere(["--version"])]);
    expect(help!.code).toBe(0);
    for (const command of ["call [options] <Service.method> [json]", "list [options]", "describe [options]", "serve [options]", "docs [options]", "dlq", "codegen", "breaking"]) expect(help!.stdout).toContain(command);
    expect(help!.stdout).toContain("exit statuses:");
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^warren \d+\.\d+\.\d+\n$/) });
    const [none, dlq, callHelp] = await Promise.all([warrenHere([]), warrenHere(["dlq"]), warrenHere(["call", "--help"])]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("Usage: warren [options] [command]");
    expect(dlq.code).toBe(2);
    expect(dlq.stderr).toContain("Usage: warren dlq [options] [command]");
    expect(callHelp.code).toBe(0);
    expect(callHelp.stdout).toContain("-H, --header <name=value>");
  });

  it("warren codegen and warren breaking run the generator's commands with the rest of the command line", async () => {
    const names = greeterNames();
    const schemas = await tempSchemas({ "greeter.service.json": greeterContract(names) });
    const out = await mkdtemp(path.join(os.tmpdir(), "warren-cli-out-"));
    onTeardown(() => rm(out, { recursive: true, force: true }));
    const generate = await warren(["codegen", "--schemas", schemas, "--out", out, "--runtime", "warren"]);
    expect(generate).toMatchObject({ code: 0, stderr: "" });
    expect(generate.stdout).toMatch(/^Greeter +.*greeter\.service\.json -> .*\/greeter\/ +3 methods, 1 event, 1 type\n$/);
    expect((await readdir(path.join(out, "greeter"))).sort()).toEqual(["client.ts", "descriptor.ts", "events.ts", "index.ts", "server.ts", "types.ts"]);
    const [breaking, bad, help] = await Promise.all([
      warren(["breaking", "--against", schemas, "--schemas", schemas]),
      warrenHere(["codegen", "--bogus"]),
      warren(["codegen", "--help"]),
    ]);
    expect(breaking).toMatchObject({ code: 0, stdout: expect.stringMatching(/^no contract changes\n$/i) });
    // Mistakes and help of the generator's commands look like every other command's.
    expect(bad.code).toBe(2);
    expect(oneLine(bad!)).toMatch(/^warren: unknown option '--bogus' \(see: warren codegen --help\)$/i);
    expect(help.stdout).toContain("Usage: warren codegen [options]");
    expect(help.stdout).toContain("--scaffold <Service>");
  });

  it("a mistake in warren codegen reads as in warren-codegen: one line naming the option, a did-you-mean, the help, exit 2", async () => {
    for (const args of [["--chek"], ["--out"], ["--out", "--check"], ["--check=yes"], ["generated"]]) {
      const [viaWarren, viaCodegen] = [await warrenHere(["codegen", ...args]), await codegenHere(args)];
      expect({ args, code: viaWarren.code, line: oneLine(viaWarren) }).toEqual({ args, code: 2, line: expect.stringMatching(/^warren( codegen)?: .* \(see: warren codegen --help\)$/) });
      expect({ args, code: viaCodegen.code, line: oneLine(viaCodegen) }).toEqual({ args, code: 2, line: expect.stringMatching(/^warren-codegen: .* \(see: warren-codegen --help\)$/) });
      expect(body(oneLine(viaWarren))).toBe(body(oneLine(viaCodegen)));
    }
    expect(oneLine(await warrenHere(["codegen", "--chek"]))).toBe("warren: unknown option '--chek'; did you mean --check? (see: warren codegen --help)");
  });

  it("warren breaking's errors name warren breaking, not warren-codegen", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["breaking"], /^warren breaking: --against is required: .* \(see: warren breaking --help\)$/],
      [["breaking", "--against", "no-such-ref~3"], /^warren breaking: --against "no-such-ref~3" is neither a directory nor a git ref .*\(see: warren breaking --help\)$/],
      [["breaking", "--againts", "main"], /^warren: unknown option '--againts'; did you mean --against\? \(see: warren breaking --help\)$/],
      [["breaking", "--against", "schemas", "main"], /^warren: unexpected argument 'main' \(see: warren breaking --help\)$/],
    ];
    for (const [args, pattern] of cases) {
      const run = await warrenHere(args);
      expect({ args, code: run.code, line: oneLine(run) }).toEqual({ args, code: 2, line: expect.stringMatching(pattern) });
    }
    const spawned = await warren(["breaking", "--against", "no-such-ref~3"]);
    expect(spawned.code).toBe(2);
    expect(oneLine(spawned)).toMatch(cases[1]![1]);
  });

  it("a surplus argument, an empty value or a value given to a switch is named; a misspelt required option is reported as misspelt", async () => {
    const cases: Array<[string[], string]> = [
      [["list", "extra"], "warren: unexpected argument 'extra' (see: warren list --help)"],
      [["describe", "Calculator", "Calculator.add"], "warren: unexpected argument 'Calculator.add' (see: warren describe --help)"],
      [["list", "--schemas="], "warren: option '--schemas <dir>' argument missing (see: warren list --help)"],
      [["list", "--offline=yes"], "warren: option '--offline' takes no value (got 'yes') (see: warren list --help)"],
      [["serve", "--mokc", "Calculator"], "warren: unknown option '--mokc'; did you mean --mock? (see: warren serve --help)"],
      [["serve", "Calculator"], "warren: serve runs mocks only: write warren serve --mock Calculator"],
      [["dlq", "show", "Orders.order_placed", "1", "2"], "warren: unexpected argument '2' (see: warren dlq show --help)"],
    ];
    for (const [args, line] of cases) {
      const run = await warrenHere(args);
      expect({ args, code: run.code, line: oneLine(run) }).toEqual({ args, code: 2, line });
    }
  });

  it("a broker address that is not amqp:// or amqps:// is a usage mistake (exit 2) naming where it came from, password redacted", async () => {
    const [fromFlag, fromServer] = [await warrenHere(["list", "--url", "http://user:secret@x"]), await warrenHere(["docs", "--server", "http://user:secret@x"])];
    expect({ code: fromFlag.code, line: oneLine(fromFlag) }).toEqual({ code: 2, line: "warren: --url: broker URL http://user:***@x must start with amqp:// or amqps://, not http://" });
    expect({ code: fromServer.code, line: oneLine(fromServer), stdout: fromServer.stdout }).toEqual({ code: 2, line: 'warren: --server must be an amqp:// or amqps:// URL, got "http://user:***@x"', stdout: "" });
    const fromEnv = await warren(["list"], { env: { AMQP_URL: "http://user:secret@x" } });
    expect({ code: fromEnv.code, line: oneLine(fromEnv) }).toEqual({ code: 2, line: "warren: AMQP_URL: broker URL http://user:***@x must start with amqp:// or amqps://, not http://" });
  });
});

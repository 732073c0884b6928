/** The `warren` command line as a whole: help, version, and the generator's commands under the same bin. */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { onTeardown } from "../helpers/broker.js";
import { greeterContract, greeterNames, oneLine, tempSchemas, warren, warrenHere } from "../cli/run.js";

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
});

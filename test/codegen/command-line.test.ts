/**
 * Mistakes on the generator's command lines: `warren-codegen` and
 * `warren-codegen breaking` say what is wrong in one line naming the option or
 * argument (with a did-you-mean), the help to read, and exit 2 — worded as the
 * `warren` command words them; run from the `warren` bin (`warren codegen`,
 * `warren breaking`), every message names that command instead.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, test } from "vitest";
import { runCli } from "../../codegen/run.js";
import { ROOT, cli } from "./helpers.js";

describe("warren-codegen: one line, exit 2, nothing on stdout", () => {
  const cases: Array<[string[], string]> = [
    [["--bogus"], "warren-codegen: unknown option '--bogus' (see: warren-codegen --help)"],
    [["--chek"], "warren-codegen: unknown option '--chek'; did you mean --check? (see: warren-codegen --help)"],
    [["-check"], "warren-codegen: unknown option '-check'; did you mean --check? (see: warren-codegen --help)"],
    [["--out"], "warren-codegen: option '--out <dir>' argument missing (see: warren-codegen --help)"],
    // parseArgs' own message here is three lines ("argument is ambiguous. Did you forget…").
    [["--out", "--check"], "warren-codegen: option '--out <dir>' argument missing (see: warren-codegen --help)"],
    [["--schemas="], "warren-codegen: option '--schemas <dir>' argument missing (see: warren-codegen --help)"],
    [["--check=yes"], "warren-codegen: option '--check' takes no value (got 'yes') (see: warren-codegen --help)"],
    [["generated"], "warren-codegen: unexpected argument 'generated' (see: warren-codegen --help)"],
    [["brekaing", "--against", "main"], "warren-codegen: unknown command 'brekaing'; did you mean breaking? (see: warren-codegen --help)"],
    [["breaking", "--againts", "main"], "warren-codegen breaking: unknown option '--againts'; did you mean --against? (see: warren-codegen breaking --help)"],
    [["breaking", "--against=", "main"], "warren-codegen breaking: option '--against <ref>' argument missing (see: warren-codegen breaking --help)"],
    [["breaking", "--against", "schemas", "extra"], "warren-codegen breaking: unexpected argument 'extra' (see: warren-codegen breaking --help)"],
  ];
  test.each(cases)("%j", async (argv, line) => {
    expect(await cli(argv)).toEqual({ code: 2, out: [], err: [line] });
  });
});

describe("run from the warren bin, messages name the command as typed there", () => {
  const asWarren = async (argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(argv, { cwd: ROOT, out: (l) => out.push(l), err: (l) => err.push(l), program: "warren" });
    return { code, out, err };
  };
  const cases: Array<[string[], number, string]> = [
    [["breaking"], 2, "warren breaking: --against is required: the old contracts, a git ref (main, HEAD~1) or a schemas directory (see: warren breaking --help)"],
    [["breaking", "--against", "no-such-ref~3"], 2, "warren breaking: --against \"no-such-ref~3\" is neither a directory nor a git ref of the repository at"],
    [["breaking", "--against", "schemas", "--schemas", "nowhere"], 2, "warren breaking: --schemas \"nowhere\" is not a directory (see: warren breaking --help)"],
    [["--check", "--scaffold", "Calculator"], 2, "warren codegen: --check and --scaffold cannot be combined (--check writes nothing)"],
    [["--out", "--check"], 2, "warren codegen: option '--out <dir>' argument missing (see: warren codegen --help)"],
    [["--scaffold", "Calculatr", "--out", "test/codegen/.tmp/never"], 2, 'warren codegen: --scaffold: no service named "Calculatr"; did you mean "Calculator"?'],
  ];
  test.each(cases)("%j", async (argv, code, start) => {
    const r = await asWarren(argv);
    expect(r).toEqual({ code, out: [], err: [expect.stringContaining(start)] });
    expect(r.err[0]!.startsWith(start)).toBe(true);
    expect(r.err[0]).not.toContain("warren-codegen");
  });

  test("the same run from warren-codegen names warren-codegen", async () => {
    expect((await cli(["breaking"])).err).toEqual(["warren-codegen breaking: --against is required: the old contracts, a git ref (main, HEAD~1) or a schemas directory (see: warren-codegen breaking --help)"]);
  });
});

test("in a real process: exit 2, one line on stderr, no stack", async () => {
  const tsx = path.join(ROOT, "node_modules/.bin/tsx");
  const r = await promisify(execFile)(tsx, [path.join(ROOT, "codegen/cli.ts"), "--out", "--chek"], { cwd: ROOT }).then(
    () => ({ code: 0, stdout: "", stderr: "" }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  expect(r).toMatchObject({ code: 2, stdout: "", stderr: "warren-codegen: option '--out <dir>' argument missing (see: warren-codegen --help)\n" });
});

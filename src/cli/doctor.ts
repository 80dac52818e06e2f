/** `k8scontainerd doctor`: prints every host check and what to fix; exit 1 when any failed. */
import { runChecks } from "../doctor/checks.ts";

const MARK = { ok: " ok ", warn: "WARN", fail: "FAIL" } as const;

export async function runDoctor(): Promise<number> {
  const results = await runChecks();
  const width = Math.max(...results.map((r) => r.name.length));
  for (const r of results) {
    console.log(`[${MARK[r.status]}] ${r.name.padEnd(width)}  ${r.detail}`);
    if (r.fix) console.log(`       ${" ".repeat(width)}  fix: ${r.fix}`);
  }
  const failed = results.filter((r) => r.status === "fail").length;
  const warned = results.filter((r) => r.status === "warn").length;
  console.log(
    failed
      ? `\n${failed} problem(s) to fix before running pods.`
      : `\nready${warned ? ` (${warned} warning(s))` : ""}.`,
  );
  return failed ? 1 : 0;
}

import { describe, expect, it } from "../src/testing/bdd.ts";
import { daemonDeno, datedSections, replaceSection, sectionOf } from "./lib.ts";

describe("replaceSection", () => {
  const report = "# R\n\nintro\n\n## A (old)\nold a\n\n## B\nb\n";

  it("replaces a section in the middle, keeping the ones after it", () => {
    expect(replaceSection(report, "## A", "## A (new)\nnew a\n")).toBe(
      "# R\n\nintro\n\n## A (new)\nnew a\n\n## B\nb\n",
    );
  });

  it("replaces the last section up to the end", () => {
    expect(replaceSection(report, "## B", "## B\nnew b")).toBe(
      "# R\n\nintro\n\n## A (old)\nold a\n\n## B\nnew b\n",
    );
  });

  it("appends a section the report does not have", () => {
    expect(replaceSection(report, "## C", "## C\nc\n")).toBe(report + "\n## C\nc\n");
    expect(replaceSection("", "## C", "## C\nc\n")).toBe("## C\nc\n");
  });

  it("matches a heading only at the start of a line", () => {
    expect(replaceSection("# R\n\nsee ## A here\n", "## A", "## A\na\n")).toBe(
      "# R\n\nsee ## A here\n\n## A\na\n",
    );
  });
});

describe("sectionOf", () => {
  it("finds a section up to the next heading, or says there is none", () => {
    const report = "# R\n\n## A (x)\na\n\n## B\nb\n";
    expect(sectionOf(report, "## A")).toBe("## A (x)\na\n");
    expect(sectionOf(report, "## B")).toBe("## B\nb\n");
    expect(sectionOf(report, "## C")).toBeUndefined();
  });
});

describe("datedSections", () => {
  it("keeps the hand-written, dated sections in order, and nothing else", () => {
    const report = "# R\n\n## Pull\np\n\n## 2026-12-04: A/B\nx\n\n## Reads\nr\n\n" +
      "## 2026-12-03: older\ny\n";
    expect(datedSections(report)).toEqual(["## 2026-12-04: A/B\nx\n", "## 2026-12-03: older\ny\n"]);
    expect(datedSections("# R\n\n## Pull\nsee ## 2026-12-04 below\n")).toEqual([]);
  });
});

/** Rss and Pss (kB) of a process's mappings of the file `bin`, from its smaps. */
async function exeMemory(pid: number, bin: string): Promise<{ rss: number; pss: number }> {
  let mine = false, rss = 0, pss = 0;
  for (const line of (await Deno.readTextFile(`/proc/${pid}/smaps`)).split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) mine = line.endsWith(` ${bin}`);
    else if (mine && line.startsWith("Rss:")) rss += parseInt(line.slice(4));
    else if (mine && line.startsWith("Pss:")) pss += parseInt(line.slice(4));
  }
  return { rss, pss };
}

/** Runs `bin` idle for a while and returns how much of its own binary it is charged. */
async function chargedExe(bin: string): Promise<{ rss: number; pss: number }> {
  const child = new Deno.Command(bin, {
    args: ["eval", "await new Promise((r) => setTimeout(r, 60_000))"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await new Promise((r) => setTimeout(r, 1500)); // past its start-up
    return await exeMemory(child.pid, bin);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}

describe("daemonDeno", () => {
  it("gives the daemon a Deno binary that no other process shares, copied once", async () => {
    const dir = await Deno.makeTempDir({ prefix: "k8sc-bench-deno-" });
    try {
      const bin = await daemonDeno(dir);
      const [a, b] = [await Deno.stat(bin), await Deno.stat(Deno.execPath())];
      expect(a.ino).not.toBe(b.ino);
      expect(a.size).toBe(b.size);
      expect(await daemonDeno(dir)).toBe(bin);
      expect((await Deno.stat(bin)).mtime?.getTime()).toBe(a.mtime?.getTime()); // not copied again
      expect(bin.endsWith("/deno")).toBe(true); // the daemon's selfCommand() goes by the name
      expect([...Deno.readDirSync(dir)].length).toBe(1);
      // On the test's own binary a child is charged only part of the pages it maps: the test
      // process maps them too. On the copy it is charged all of them.
      const shared = await chargedExe(Deno.execPath());
      expect(shared.pss).toBeLessThan(shared.rss * 0.9);
      const own = await chargedExe(bin);
      expect(own.rss).toBeGreaterThan(1000);
      expect(own.pss).toBeGreaterThanOrEqual(own.rss - 8);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

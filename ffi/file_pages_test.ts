import { describe, expect, it } from "../src/testing/bdd.ts";
import { pageOutCandidates } from "./file_pages.ts";

// qemu-user takes madvise(2) advice it does not emulate as a no-op: nothing is paged out there.
const emulated = Deno.env.get("K8SC_EMULATED") === "qemu-user";

/** Some work in fresh code paths, to run after the page-out. */
const work = () =>
  [...Array(1000).keys()].map((i) => JSON.stringify({ i, s: "x".repeat(i % 7) })).join("").length;

const SMAPS = [
  "55d0f53d0000-55d0f71d4000 r--p 00000000 fe:00 5309459                    /opt/deno",
  "Rss:               12796 kB",
  "Anonymous:             0 kB",
  "VmFlags: rd mr mw me dw sd",
  "55d0f71d4000-55d0faec8000 r-xp 01b8e000 fe:00 5309459                    /opt/deno",
  "Rss:               24072 kB",
  "Anonymous:             0 kB",
  "VmFlags: rd ex mr mw me dw sd",
  // RELRO: read-only now, but its pages are private copies the loader relocated.
  "55d0faec8000-55d0fb2c8000 r--p 05881000 fe:00 5309459                    /opt/deno",
  "Rss:                4096 kB",
  "Anonymous:          4096 kB",
  "VmFlags: rd mr mw me dw ac sd",
  "55d0fb2c8000-55d0fb4c8000 rw-p 05c81000 fe:00 5309459                    /opt/deno",
  "Rss:                2700 kB",
  "Anonymous:           120 kB",
  "VmFlags: rd wr mr mw me dw ac sd",
  "55d0fc000000-55d0fd000000 rw-p 00000000 00:00 0                          [heap]",
  "Rss:               10192 kB",
  "Anonymous:         10192 kB",
  "VmFlags: rd wr mr mw me ac sd",
  "7fa09e000000-7fa09e300000 r--s 00000000 fe:00 42                         /root/.cache/deno/v8 cache",
  "Rss:                2940 kB",
  "Anonymous:             0 kB",
  "VmFlags: rd sh mr mw me ms sd",
  "7fa09f000000-7fa09f100000 r--p 00000000 fe:00 43                         /usr/lib/locale/C.utf8",
  "Rss:                   0 kB",
  "Anonymous:             0 kB",
  "VmFlags: rd mr mw me sd",
  "7fa09f200000-7fa09f300000 r--s 00000000 00:05 44                         /dev/dri/card0",
  "Rss:                  64 kB",
  "Anonymous:             0 kB",
  "VmFlags: rd sh mr mw me ms io pf sd",
  "7fa09f400000-7fa09f500000 r-xp 00000000 fe:00 45                         /opt/locked.so",
  "Rss:                 256 kB",
  "Anonymous:             0 kB",
  "VmFlags: rd ex mr mw me lo sd",
  "7fa09ffe6000-7fa09ffe7000 r--p 00000000 00:00 0 ",
  "Rss:                   4 kB",
  "Anonymous:             4 kB",
  "VmFlags: rd mr mw me ac sd",
  "",
].join("\n");

describe("file pages", () => {
  it("advises only read-only file mappings without private pages, resident, not refused", () => {
    expect(pageOutCandidates(SMAPS).map((m) => [m.start.toString(16), m.path, m.rss / 1024]))
      .toEqual([
        ["55d0f53d0000", "/opt/deno", 12796],
        ["55d0f71d4000", "/opt/deno", 24072],
        ["7fa09e000000", "/root/.cache/deno/v8 cache", 2940],
      ]);
    expect(pageOutCandidates(SMAPS)[1].end).toBe(0x55d0faec8000n);
    expect(pageOutCandidates("")).toEqual([]);
  });

  it.skipIf(emulated, "qemu-user does not emulate MADV_PAGEOUT")(
    "frees what a process alone maps of its binary, and the process runs on",
    async () => {
      // A private copy of Deno: the kernel never evicts pages that this test process maps too.
      const dir = await Deno.makeTempDir({ prefix: "k8sc-file-pages-" });
      try {
        const deno = `${dir}/deno`;
        await Deno.copyFile(Deno.execPath(), deno);
        await Deno.chmod(deno, 0o755);
        const script = `
          import { pageOutFileMappings } from ${
          JSON.stringify(import.meta.resolve("./file_pages.ts"))
        };
          const exe = () => Deno.readTextFileSync("/proc/self/smaps").split("\\n").reduce(
            (s, l) => {
              if (/^[0-9a-f]+-/.test(l)) s.on = l.endsWith(" ${deno}");
              else if (s.on && l.startsWith("Rss:")) s.kb += parseInt(l.slice(4));
              return s;
            }, { on: false, kb: 0 }).kb;
          const before = exe();
          const advised = pageOutFileMappings();
          const after = exe();
          // Code and data paged out come back when used.
          const sum = (${work.toString()})();
          console.log(JSON.stringify({ before, after, advised, sum }));`;
        const out = await new Deno.Command(deno, {
          args: ["eval", "--quiet", script],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout);
        expect({ code: out.code, stderr: new TextDecoder().decode(out.stderr) })
          .toEqual({ code: 0, stderr: "" });
        const r = JSON.parse(text);
        expect(r.sum).toBe(work());
        console.log(`  the binary resident: ${r.before} kB before, ${r.after} kB after`);
        expect(r.advised.mappings).toBeGreaterThan(0);
        expect(r.before).toBeGreaterThan(8 * 1024); // kB of the binary start-up left resident
        expect(r.after).toBeLessThan(r.before / 2);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
});

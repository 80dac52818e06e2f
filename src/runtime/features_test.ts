/**
 * The per-handler features Status advertises, probed on this host: runc 1.1 lists `rro` in its
 * `features` output; crun 1.8 has no `features` command and refuses hybrid cgroup hosts; the
 * idmap probe answers for the filesystem it is given.
 */
import { describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import { probeHandlerFeatures, probeHostIdmap } from "./features.ts";
import { mountSetattrSupported } from "../../ffi/idmap.ts";

const has = (p: string) => Deno.stat(p).then(() => true, () => false);
const runc = await has("/usr/bin/runc"), crun = await has("/usr/bin/crun");
// qemu-user 7.2 answers ENOSYS for open_tree / mount_setattr: no idmapped mounts emulated.
const emulated = Deno.env.get("K8SC_EMULATED") === "qemu-user";

describe("runtime handler features", () => {
  it.skipIf(!runc, "runc is not installed (/usr/bin/runc)")(
    "runc: rro from its features command (with mount_setattr); userns as the idmap probe says",
    async () => {
      const f = await probeHandlerFeatures("/usr/bin/runc", true, "v2");
      expect(f).toEqual({ recursiveReadOnlyMounts: mountSetattrSupported(), userNamespaces: true });
      expect((await probeHandlerFeatures("/usr/bin/runc", false, "v2")).userNamespaces).toBe(false);
    },
  );

  it.skipIf(!crun, "crun is not installed (/usr/bin/crun)")(
    "crun claims nothing on a hybrid cgroup host, and no rro without a features command",
    async () => {
      expect(await probeHandlerFeatures("/usr/bin/crun", true, "hybrid")).toEqual({
        recursiveReadOnlyMounts: false,
        userNamespaces: false,
      });
      const v2 = await probeHandlerFeatures("/usr/bin/crun", true, "v2");
      expect(v2.userNamespaces).toBe(true);
    },
  );

  it("a runtime that is not there claims no rro", async () => {
    const f = await probeHandlerFeatures("/nonexistent/runc", false, "v2");
    expect(f).toEqual({ recursiveReadOnlyMounts: false, userNamespaces: false });
  });

  it.skipIf(!isRoot, ROOT_REASON)(
    "the idmap probe: yes on ext4/tmpfs here, no for a path that is not there",
    async () => {
      expect(await probeHostIdmap("/nonexistent/dir")).toBe(false);
      const kernel = Deno.osRelease().split(".").map(Number);
      if (emulated) {
        console.log("idmap probe on tmpfs not checked: qemu-user does not emulate mount_setattr");
      } else if (kernel[0] > 6 || (kernel[0] === 6 && kernel[1] >= 3)) {
        expect(await probeHostIdmap("/run")).toBe(true); // tmpfs idmaps since 6.3
      }
    },
  );
});

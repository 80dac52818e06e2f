/**
 * The kubeadm phase's stats check, in the guest: asks the kubelet's summary API (through the
 * apiserver's node proxy) until the named pod's container has CPU and memory figures, then
 * prints them. cgroup v2 with the systemd driver is the path host mode (cgroup v1) cannot see.
 *
 *   kube_summary.ts <pod> <container>
 *
 * Exits non-zero naming what the summary lacked after 3 minutes.
 *
 * @example
 * ```sh
 * deno run -A vm/guest/kube_summary.ts limits app
 * ```
 */
const [pod, container] = Deno.args;
if (!pod || !container) {
  console.error("usage: kube_summary.ts <pod> <container>");
  Deno.exit(2);
}

function kubectl(...args: string[]): string {
  const o = new Deno.Command("kubectl", { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!o.success) {
    throw new Error(`kubectl ${args.join(" ")}: ${new TextDecoder().decode(o.stderr).trim()}`);
  }
  return new TextDecoder().decode(o.stdout);
}

/** What the summary still lacks for the pod's container, or undefined when it has it all. */
// deno-lint-ignore no-explicit-any
function lacking(s: any): string | undefined {
  if (!(s?.node?.memory?.workingSetBytes > 0)) return "node memory.workingSetBytes";
  // deno-lint-ignore no-explicit-any
  const p = s.pods?.find((p: any) => p.podRef?.name === pod);
  // deno-lint-ignore no-explicit-any
  const names = s.pods?.map((p: any) => p.podRef?.name).join(", ");
  if (!p) return `pod ${pod} (pods listed: ${names})`;
  // deno-lint-ignore no-explicit-any
  const c = p.containers?.find((c: any) => c.name === container);
  if (!c) return `container ${container} in pod ${pod}`;
  if (!(c.cpu?.usageCoreNanoSeconds > 0)) return `${container}'s cpu.usageCoreNanoSeconds`;
  if (!(c.memory?.workingSetBytes > 0)) return `${container}'s memory.workingSetBytes`;
  if (!c.rootfs) return `${container}'s rootfs`;
  return undefined;
}

const node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").trim();
const deadline = Date.now() + 180_000;
let missing = "no answer yet";
for (;;) {
  try {
    const s = JSON.parse(kubectl("get", "--raw", `/api/v1/nodes/${node}/proxy/stats/summary`));
    const m = lacking(s);
    if (m === undefined) {
      // deno-lint-ignore no-explicit-any
      const c = s.pods.find((p: any) => p.podRef.name === pod).containers
        // deno-lint-ignore no-explicit-any
        .find((c: any) => c.name === container);
      console.log(
        `${pod}/${container}: cpu ${c.cpu.usageCoreNanoSeconds} ns, memory working set ` +
          `${c.memory.workingSetBytes} B, rootfs used ${c.rootfs.usedBytes ?? "?"} B`,
      );
      break;
    }
    missing = m;
  } catch (e) {
    missing = String(e);
  }
  if (Date.now() > deadline) {
    console.error(`the kubelet's stats summary lacks ${missing}`);
    Deno.exit(1);
  }
  await new Promise((r) => setTimeout(r, 5000));
}

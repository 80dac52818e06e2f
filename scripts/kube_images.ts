/**
 * Control-plane images, offline: turns Kubernetes server binaries that the operator built or
 * downloaded into the OCI images `kubeadm config images list` names (kube-apiserver,
 * kube-controller-manager, kube-scheduler, kube-proxy, etcd, pause, coredns), one OCI-layout
 * tarball each, which `k8scontainerd -n k8s.io images import` reads. Nothing is downloaded:
 * registry.k8s.io is not reachable from the nodes this is for.
 *
 * What goes into each image: the binary at /usr/local/bin/<name> (on PATH, as kubeadm's static
 * pods call it by name), the ELF interpreter and shared libraries it needs (from `ldd`, at their
 * host paths), a minimal /etc (passwd, group, nsswitch.conf) and /tmp. kube-proxy also gets the
 * host's iptables tools with their extension modules, which it runs in iptables mode. etcd is
 * Debian's etcd-server binary unless one is given; pause is catatonit (`-P`). An image whose
 * binary is missing (coredns, usually) is skipped and said so: kubeadm's matching phase must
 * then be skipped (`--skip-phases=addon/coredns`).
 *
 * @example
 * ```sh
 * scripts/deno run -A scripts/kube_images.ts --bin /opt/kube/bin            # → /opt/kube/bin/images/*.tar
 * scripts/deno run -A scripts/kube_images.ts --bin DIR --list images.txt --out DIR/images
 * k8scontainerd -n k8s.io images import DIR/images/kube-apiserver.tar
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { buildImage, buildLayer, type Entry, hostArch, writeOciLayout } from "./fixtures/oci.ts";
import { CATATONIT_BIN } from "./fixtures/images.ts";

/** One image to build: its full reference and where its binary comes from. */
export interface ControlPlaneImage {
  /** e.g. `registry.k8s.io/kube-apiserver:v1.32.13`. */
  ref: string;
  /** The component: the last path element of the repository (kube-apiserver, etcd, pause…). */
  component: string;
  /** The binary on this host, or undefined when none was found (the image is skipped). */
  binary?: string;
}

/** What {@link buildControlPlaneImages} did with each image. */
export interface BuiltImage extends ControlPlaneImage {
  /** The tarball written, absent when skipped. */
  tarball?: string;
  /** Why the image was skipped. */
  skipped?: string;
}

const PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Splits `kubeadm config images list` output into references and components.
 *
 * @example
 * ```ts
 * parseImageList("registry.k8s.io/coredns/coredns:v1.11.3\n")[0].component; // "coredns"
 * ```
 */
export function parseImageList(text: string): ControlPlaneImage[] {
  return text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")).map(
    (ref) => {
      const repo = ref.replace(/@.*$/, "").replace(/:[^/:]+$/, "");
      const component = repo.slice(repo.lastIndexOf("/") + 1);
      if (!/^[a-z0-9][a-z0-9._-]*$/.test(component) || repo === ref) {
        throw new Error(`image list: "${ref}" is not a NAME:TAG reference`);
      }
      return { ref, component };
    },
  );
}

/** Where each component's binary comes from: the bin dir; etcd and pause have fallbacks. */
export async function locateBinaries(
  images: ControlPlaneImage[],
  o: { binDir: string; etcd?: string; pause?: string },
): Promise<ControlPlaneImage[]> {
  const isFile = async (p: string) => (await Deno.stat(p).catch(() => null))?.isFile ?? false;
  const out: ControlPlaneImage[] = [];
  for (const img of images) {
    const candidates = img.component === "etcd"
      ? [o.etcd, `${o.binDir}/etcd`, "/usr/bin/etcd"]
      : img.component === "pause"
      ? [o.pause, `${o.binDir}/pause`, CATATONIT_BIN]
      : [`${o.binDir}/${img.component}`];
    let binary: string | undefined;
    for (const c of candidates) {
      if (c && await isFile(c)) {
        binary = c;
        break;
      }
    }
    out.push({ ...img, binary });
  }
  return out;
}

/** The shared objects a dynamic ELF file loads (interpreter included); none for a static one. */
async function sharedLibraries(path: string): Promise<string[]> {
  const out = await new Deno.Command("ldd", { args: [path], stdout: "piped", stderr: "piped" })
    .output();
  // ldd exits 1 with "not a dynamic executable" for static binaries.
  const text = new TextDecoder().decode(out.stdout);
  const libs: string[] = [];
  for (const line of text.split("\n")) {
    const m = line.match(/=>\s+(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(/);
    if (m) libs.push(m[1]);
  }
  return libs;
}

/** Layer entries for a host file and what it links against, at their host paths. */
async function withLibraries(hostPaths: string[], seen: Set<string>): Promise<Entry[]> {
  const entries: Entry[] = [];
  for (const p of hostPaths) {
    for (const lib of await sharedLibraries(p)) {
      if (seen.has(lib)) continue;
      seen.add(lib);
      entries.push({ type: "file", path: lib, mode: 0o755, hostPath: lib });
    }
  }
  return entries;
}

/** iptables (nft and legacy) for kube-proxy: the multi-call binaries, their names, extensions. */
async function iptablesEntries(seen: Set<string>): Promise<Entry[]> {
  const entries: Entry[] = [];
  const bins: string[] = [];
  for (const flavour of ["nft", "legacy"]) {
    const multi = `/usr/sbin/xtables-${flavour}-multi`;
    if (!(await Deno.stat(multi).catch(() => null))) continue;
    bins.push(multi);
    entries.push({ type: "file", path: multi, mode: 0o755, hostPath: multi });
    for (const fam of ["iptables", "ip6tables"]) {
      for (const suffix of ["", "-save", "-restore"]) {
        entries.push({
          type: "symlink",
          path: `/usr/sbin/${fam}-${flavour}${suffix}`,
          target: `xtables-${flavour}-multi`,
        });
      }
    }
  }
  if (bins.length === 0) return [];
  // The plain names point at nft, as Debian's alternatives do by default; kube-proxy probes both.
  const plain = bins[0].includes("-nft-") ? "nft" : "legacy";
  for (const fam of ["iptables", "ip6tables"]) {
    for (const suffix of ["", "-save", "-restore"]) {
      entries.push({
        type: "symlink",
        path: `/usr/sbin/${fam}${suffix}`,
        target: `${fam}-${plain}${suffix}`,
      });
    }
  }
  const extDir = `/usr/lib/${libArchDir()}/xtables`;
  const exts: string[] = [];
  try {
    for await (const e of Deno.readDir(extDir)) {
      if (e.isFile && e.name.endsWith(".so")) exts.push(`${extDir}/${e.name}`);
    }
  } catch { /* no extensions: iptables then knows only the built-in matches */ }
  exts.sort();
  for (const x of exts) entries.push({ type: "file", path: x, mode: 0o644, hostPath: x });
  entries.push(...await withLibraries([...bins, ...exts], seen));
  return entries;
}

function libArchDir(): string {
  return hostArch() === "arm64" ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
}

/** Builds one image and writes it as an OCI-layout tarball; returns the tarball's path. */
async function buildOne(img: ControlPlaneImage, outDir: string): Promise<string> {
  const bin = img.binary!;
  const seen = new Set<string>();
  const entries: Entry[] = [
    { type: "dir", path: "/etc" },
    { type: "dir", path: "/tmp", mode: 0o1777 },
    { type: "dir", path: "/root", mode: 0o700 },
    { type: "dir", path: "/var/run" },
    { type: "file", path: "/etc/passwd", content: "root:x:0:0:root:/root:/sbin/nologin\n" },
    { type: "file", path: "/etc/group", content: "root:x:0:\n" },
    { type: "file", path: "/etc/nsswitch.conf", content: "hosts: files dns\n" },
  ];
  // The components as Cmd, not Entrypoint: kubeadm's manifests name the command anyway, and an
  // operator's `run IMAGE iptables --version` then runs what it says.
  let process: { Entrypoint?: string[]; Cmd?: string[] };
  if (img.component === "pause") {
    entries.push({ type: "file", path: "/pause", mode: 0o755, hostPath: bin });
    process = { Entrypoint: bin.endsWith("catatonit") ? ["/pause", "-P"] : ["/pause"] };
  } else {
    entries.push({
      type: "file",
      path: `/usr/local/bin/${img.component}`,
      mode: 0o755,
      hostPath: bin,
    });
    process = { Cmd: [`/usr/local/bin/${img.component}`] };
  }
  entries.push(...await withLibraries([bin], seen));
  if (img.component === "kube-proxy") entries.push(...await iptablesEntries(seen));
  const layer = await buildLayer(entries, {
    compression: "gzip",
    level: 1,
    implicitDirs: true,
    createdBy: `k8scontainerd kube_images: ${img.component} from ${bin}`,
  });
  const arch = hostArch();
  const image = buildImage({
    layers: [layer],
    config: {
      architecture: arch,
      os: "linux",
      ...(arch === "arm64" ? { variant: "v8" } : {}),
      config: { Env: [`PATH=${PATH}`], ...process },
    },
  });
  const layout = await Deno.makeTempDir({ prefix: `k8sc-kube-image-${img.component}-` });
  try {
    const tag = img.ref.replace(/@.*$/, "").match(/:([^/:]+)$/)![1];
    await writeOciLayout(layout, [{
      artifact: image,
      ref: tag,
      annotations: { "io.containerd.image.name": img.ref },
    }]);
    const tarball = `${outDir}/${img.component}.tar`;
    const tar = await new Deno.Command("tar", {
      args: ["-C", layout, "-cf", `${tarball}.tmp`, "oci-layout", "index.json", "blobs"],
      stderr: "piped",
    }).output();
    if (!tar.success) {
      throw new Error(`tar of ${img.ref}: ${new TextDecoder().decode(tar.stderr).trim()}`);
    }
    await Deno.rename(`${tarball}.tmp`, tarball);
    return tarball;
  } finally {
    await Deno.remove(layout, { recursive: true }).catch(() => {});
  }
}

/**
 * Builds every image of the list whose binary was found into `outDir`; the rest are returned
 * with the reason they were skipped.
 *
 * @example
 * ```ts
 * const list = await locateBinaries(parseImageList(text), { binDir: "/opt/kube/bin" });
 * for (const b of await buildControlPlaneImages(list, "/opt/kube/bin/images")) console.log(b);
 * ```
 */
export async function buildControlPlaneImages(
  images: ControlPlaneImage[],
  outDir: string,
): Promise<BuiltImage[]> {
  await Deno.mkdir(outDir, { recursive: true });
  const out: BuiltImage[] = [];
  for (const img of images) {
    if (!img.binary) {
      out.push({ ...img, skipped: `no ${img.component} binary` });
      continue;
    }
    out.push({ ...img, tarball: await buildOne(img, outDir) });
  }
  return out;
}

/** The image list from the given kubeadm: `kubeadm config images list` for its own version. */
async function kubeadmImageList(kubeadm: string): Promise<string> {
  const run = async (args: string[]) => {
    const o = await new Deno.Command(kubeadm, { args, stdout: "piped", stderr: "piped" }).output();
    if (!o.success) {
      throw new Error(
        `${kubeadm} ${args.join(" ")}: ${new TextDecoder().decode(o.stderr).trim()}`,
      );
    }
    return new TextDecoder().decode(o.stdout).trim();
  };
  const version = await run(["version", "-o", "short"]);
  return await run(["config", "images", "list", "--kubernetes-version", version]);
}

const USAGE = `usage: scripts/deno run -A scripts/kube_images.ts --bin DIR [--out DIR] [--list FILE]
       [--etcd PATH] [--pause PATH]

  --bin DIR    the directory holding kube-apiserver, kube-controller-manager, kube-scheduler,
               kube-proxy (and kubeadm, unless --list is given)
  --out DIR    where the tarballs go (default DIR/images)
  --list FILE  the image references, one per line (default: kubeadm config images list)
  --etcd PATH  the etcd binary (default DIR/etcd, else Debian's /usr/bin/etcd)
  --pause PATH the pause binary (default DIR/pause, else catatonit)`;

if (import.meta.main) {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        bin: { type: "string" },
        out: { type: "string" },
        list: { type: "string" },
        etcd: { type: "string" },
        pause: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`kube_images: ${(e as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (!values.bin) {
    console.error(`kube_images: --bin is required\n${USAGE}`);
    Deno.exit(2);
  }
  const binDir = values.bin.replace(/\/+$/, "");
  const text = values.list
    ? await Deno.readTextFile(values.list)
    : await kubeadmImageList(`${binDir}/kubeadm`);
  const located = await locateBinaries(parseImageList(text), {
    binDir,
    etcd: values.etcd,
    pause: values.pause,
  });
  const outDir = values.out ?? `${binDir}/images`;
  let built = 0;
  for (const b of await buildControlPlaneImages(located, outDir)) {
    if (b.tarball) {
      const size = (await Deno.stat(b.tarball)).size;
      console.log(`${b.ref}: ${b.tarball} (${(size / 1e6).toFixed(1)} MB, from ${b.binary})`);
      built++;
    } else {
      console.log(
        `${b.ref}: skipped (${b.skipped}; skip kubeadm's ${
          b.component === "coredns" ? "addon/coredns" : b.component
        } phase)`,
      );
    }
  }
  if (built === 0) {
    console.error("kube_images: no image built");
    Deno.exit(1);
  }
}

/**
 * The CDI registry: every device of every spec file in the spec directories, by qualified
 * name. Directories are read in order and a later one wins when two define the same device
 * (`/var/run/cdi`, written by drivers at run time, over `/etc/cdi`), as the CDI library does;
 * two files of the same directory defining one device is a conflict, and that device cannot be
 * used until one goes. A spec file that cannot be read, parsed or validated is logged and
 * skipped; the other files still count.
 *
 * The registry is a snapshot: {@link CdiRegistry.read} reads the directories afresh (the CRI
 * does so for each CreateContainer that asks for devices, so a spec written by a driver is
 * seen at once), and {@link CdiRegistry.fromSources} builds one from texts without I/O.
 *
 * @example
 * ```ts
 * import { CdiRegistry } from "./registry.ts";
 * const reg = await CdiRegistry.read(["/etc/cdi", "/var/run/cdi"]);
 * const edits = reg.resolve(["vendor.com/device=foo"]);
 * ```
 */
import { FailedPreconditionError, NotFoundError } from "../errdefs/errors.ts";
import type { Logger } from "../log/logger.ts";
import { parseQualifiedName } from "./name.ts";
import {
  type CdiDevice,
  type CdiSpec,
  type ContainerEdits,
  decodeSpec,
  parseSpec,
} from "./spec.ts";

/**
 * The text of one spec file and the index of the directory it was found in.
 *
 * @example
 * ```ts
 * import type { SpecSource } from "./registry.ts";
 * const s: SpecSource = { path: "/etc/cdi/a.json", dirIndex: 0, text: "{}" };
 * ```
 */
export interface SpecSource {
  path: string;
  dirIndex: number;
  text: string;
}

/**
 * A spec file that was skipped, why, and what it seemed to define (when it decoded at all), so
 * a request for one of its devices can name it.
 *
 * @example
 * ```ts
 * import type { BrokenSpec } from "./registry.ts";
 * const b: BrokenSpec = { path: "/etc/cdi/bad.yaml", reason: "cdiVersion is required", devices: ["vendor.com/device=foo"] };
 * ```
 */
export interface BrokenSpec {
  path: string;
  reason: string;
  /** Qualified names it seemed to define; undefined when it did not even decode. */
  devices?: string[];
}

/**
 * One group of edits to apply, and where it came from (for error messages).
 *
 * @example
 * ```ts
 * import type { SourcedEdits } from "./registry.ts";
 * const e: SourcedEdits = { source: 'CDI device "a.com/b=c" (/etc/cdi/a.json)', edits: { env: ["A=1"] } };
 * ```
 */
export interface SourcedEdits {
  source: string;
  edits: ContainerEdits;
}

interface Entry {
  path: string;
  dirIndex: number;
  spec: CdiSpec;
  device: CdiDevice;
}

const SPEC_FILE = /\.(json|ya?ml)$/;

/** What a document that failed validation seemed to define, best effort. */
function claimedDevices(doc: unknown): string[] | undefined {
  if (doc === null || typeof doc !== "object") return undefined;
  const d = doc as Record<string, unknown>;
  if (typeof d.kind !== "string" || !Array.isArray(d.devices)) return undefined;
  return d.devices.flatMap((x) =>
    x && typeof x === "object" && typeof (x as Record<string, unknown>).name === "string"
      ? [`${d.kind}=${(x as Record<string, unknown>).name}`]
      : []
  );
}

/**
 * The devices of a set of spec directories. See the module comment for the rules.
 *
 * @example
 * ```ts
 * import { CdiRegistry } from "./registry.ts";
 * const reg = CdiRegistry.fromSources(["/etc/cdi"], [{
 *   path: "/etc/cdi/a.json",
 *   dirIndex: 0,
 *   text: '{"cdiVersion":"0.6.0","kind":"a.com/b","devices":[{"name":"c","containerEdits":{"env":["A=1"]}}]}',
 * }]);
 * reg.devices(); // ["a.com/b=c"]
 * ```
 */
export class CdiRegistry {
  readonly #dirs: string[];
  readonly #entries = new Map<string, Entry[]>();
  readonly #broken: BrokenSpec[] = [];

  private constructor(dirs: string[]) {
    this.#dirs = dirs;
  }

  /**
   * Builds a registry from spec texts (no I/O). Broken ones are kept in {@link broken}.
   *
   * @example
   * ```ts
   * import { CdiRegistry } from "./registry.ts";
   * CdiRegistry.fromSources(["/etc/cdi"], [{ path: "/etc/cdi/x.json", dirIndex: 0, text: "{" }]).broken.length; // 1
   * ```
   */
  static fromSources(dirs: string[], sources: SpecSource[], log?: Logger): CdiRegistry {
    const reg = new CdiRegistry(dirs);
    for (const s of sources) reg.#add(s, log);
    return reg;
  }

  /**
   * Reads every `*.json`, `*.yaml` and `*.yml` file of `dirs` (in order; files by name). A
   * missing directory is simply empty.
   *
   * @example
   * ```ts
   * import { CdiRegistry } from "./registry.ts";
   * const reg = await CdiRegistry.read(["/etc/cdi", "/var/run/cdi"]);
   * console.log(reg.devices());
   * ```
   */
  static async read(dirs: string[], log?: Logger): Promise<CdiRegistry> {
    const sources: SpecSource[] = [];
    const unreadable: BrokenSpec[] = [];
    for (const [dirIndex, dir] of dirs.entries()) {
      const names: string[] = [];
      try {
        for await (const e of Deno.readDir(dir)) {
          if (!e.isDirectory && SPEC_FILE.test(e.name)) names.push(e.name);
        }
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          log?.warn("CDI spec directory cannot be read; skipped", { dir, err: e });
        }
        continue;
      }
      for (const name of names.sort()) {
        const path = `${dir.replace(/\/+$/, "")}/${name}`;
        try {
          sources.push({ path, dirIndex, text: await Deno.readTextFile(path) });
        } catch (e) {
          // A dangling symlink or a directory named *.json: not a spec.
          if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) continue;
          unreadable.push({
            path,
            reason: `CDI spec ${path} cannot be read: ${(e as Error).message}`,
          });
        }
      }
    }
    const reg = CdiRegistry.fromSources(dirs, sources, log);
    for (const b of unreadable) {
      log?.warn("CDI spec file skipped", { path: b.path, reason: b.reason });
      reg.#broken.push(b);
    }
    return reg;
  }

  #add(s: SpecSource, log?: Logger): void {
    let spec: CdiSpec;
    try {
      spec = parseSpec(s.text, s.path);
    } catch (e) {
      const reason = (e as Error).message;
      let devices: string[] | undefined;
      try {
        devices = claimedDevices(decodeSpec(s.text, s.path));
      } catch {
        devices = undefined;
      }
      log?.warn("CDI spec file skipped", { path: s.path, reason });
      this.#broken.push({ path: s.path, reason, devices });
      return;
    }
    for (const device of spec.devices) {
      const name = `${spec.kind}=${device.name}`;
      const entry: Entry = { path: s.path, dirIndex: s.dirIndex, spec, device };
      const cur = this.#entries.get(name);
      if (!cur || cur[0].dirIndex < s.dirIndex) this.#entries.set(name, [entry]);
      else if (cur[0].dirIndex === s.dirIndex) cur.push(entry);
      // A lower dirIndex loses to what is there.
    }
  }

  /**
   * Spec files that were skipped, with the reason.
   *
   * @example
   * ```ts
   * import { CdiRegistry } from "./registry.ts";
   * for (const b of (await CdiRegistry.read(["/etc/cdi"])).broken) console.log(b.path, b.reason);
   * ```
   */
  get broken(): readonly BrokenSpec[] {
    return this.#broken;
  }

  /**
   * The qualified names of every usable or conflicting device, sorted.
   *
   * @example
   * ```ts
   * import { CdiRegistry } from "./registry.ts";
   * (await CdiRegistry.read(["/etc/cdi"])).devices(); // e.g. ["nvidia.com/gpu=0", "nvidia.com/gpu=all"]
   * ```
   */
  devices(): string[] {
    return [...this.#entries.keys()].sort();
  }

  /**
   * The spec file a usable device comes from, or undefined.
   *
   * @example
   * ```ts
   * import { CdiRegistry } from "./registry.ts";
   * (await CdiRegistry.read(["/etc/cdi"])).sourceOf("vendor.com/device=foo"); // "/etc/cdi/vendor.json"
   * ```
   */
  sourceOf(name: string): string | undefined {
    const e = this.#entries.get(name);
    return e?.length === 1 ? e[0].path : undefined;
  }

  /**
   * The edits for a list of qualified device names, in the order to apply them: for each
   * device (duplicates once), its spec's own containerEdits the first time that spec is met,
   * then the device's. Every name is checked before anything is returned.
   *
   * @throws InvalidArgumentError for a malformed name; NotFoundError for a device no usable
   * spec defines; FailedPreconditionError for a device that only a skipped (invalid) spec
   * defines, that two specs of one directory both define, or that needs edits we cannot apply.
   * @example
   * ```ts
   * import { CdiRegistry } from "./registry.ts";
   * const reg = await CdiRegistry.read(["/etc/cdi"]);
   * for (const { source, edits } of reg.resolve(["vendor.com/device=foo"])) console.log(source, edits);
   * ```
   */
  resolve(names: string[]): SourcedEdits[] {
    const out: SourcedEdits[] = [];
    const specsDone = new Set<string>();
    for (const name of [...new Set(names)]) {
      parseQualifiedName(name);
      const entry = this.#lookup(name);
      const unsupported = [
        ...(entry.spec.containerEdits.unsupported ?? []),
        ...(entry.device.containerEdits.unsupported ?? []),
      ];
      if (unsupported.length) {
        throw new FailedPreconditionError(
          `CDI device ${JSON.stringify(name)} (${entry.path}) needs ${
            unsupported.join(", ")
          } edits, which k8scontainerd does not apply`,
        );
      }
      if (!specsDone.has(entry.path)) {
        specsDone.add(entry.path);
        if (Object.keys(entry.spec.containerEdits).length) {
          out.push({
            source: `CDI spec ${entry.path}`,
            edits: entry.spec.containerEdits,
          });
        }
      }
      out.push({
        source: `CDI device ${JSON.stringify(name)} (${entry.path})`,
        edits: entry.device.containerEdits,
      });
    }
    return out;
  }

  #lookup(name: string): Entry {
    const found = this.#entries.get(name);
    if (found && found.length > 1) {
      throw new FailedPreconditionError(
        `CDI device ${JSON.stringify(name)} is defined by more than one spec in one directory (${
          found.map((e) => e.path).join(", ")
        }): remove all but one`,
      );
    }
    if (found) return found[0];
    const claimed = this.#broken.find((b) => b.devices?.includes(name));
    if (claimed) {
      throw new FailedPreconditionError(
        `CDI device ${
          JSON.stringify(name)
        } is defined only in ${claimed.path}, which was skipped: ${claimed.reason}`,
      );
    }
    const unknown = this.#broken.filter((b) => b.devices === undefined);
    const hint = unknown.length
      ? ` (skipped unreadable spec files: ${unknown.map((b) => `${b.reason}`).join("; ")})`
      : "";
    throw new NotFoundError(
      `CDI device ${JSON.stringify(name)} in ${
        this.#dirs.join(", ") || "no spec directory"
      }${hint}`,
    );
  }
}

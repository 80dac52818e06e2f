/**
 * Resolves a container's user ("app", "1000:1000", CRI run_as_user …) to numbers, using the
 * /etc/passwd and /etc/group TEXTS the caller read from the image's rootfs. Pure: no file is
 * opened here, so every rule is unit-testable and the caller decides how to read the rootfs
 * (it may not even be mounted on the host).
 *
 * @example
 * ```ts
 * import { resolveUser } from "./user.ts";
 * const u = resolveUser("app", "app:x:1000:1000::/home/app:/bin/sh\n", "extra:x:2000:app\n");
 * // { uid: 1000, gid: 1000, additionalGids: [1000, 2000], home: "/home/app", name: "app" }
 * ```
 */

import { InvalidArgumentError } from "../../errdefs/errors.ts";

/**
 * One /etc/passwd line.
 *
 * @example
 * ```ts
 * import type { PasswdEntry } from "./user.ts";
 * const e: PasswdEntry = { name: "app", uid: 1000, gid: 1000, home: "/home/app", shell: "/bin/sh" };
 * ```
 */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/**
 * One /etc/group line.
 *
 * @example
 * ```ts
 * import type { GroupEntry } from "./user.ts";
 * const g: GroupEntry = { name: "extra", gid: 2000, members: ["app"] };
 * ```
 */
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/**
 * A user as the caller asks for it: the image's / CRI's "user[:group]" string, or the CRI
 * fields run_as_user (uid), run_as_username (name) and run_as_group (gid).
 *
 * @example
 * ```ts
 * import type { UserRequest } from "./user.ts";
 * const a: UserRequest = "app:extra";
 * const b: UserRequest = { uid: 1000, gid: 3000 };
 * ```
 */
export type UserRequest = string | { uid?: number; gid?: number; name?: string };

/**
 * A resolved user: what goes into the spec's process.user, plus the home directory for $HOME.
 * `additionalGids` starts with the primary gid, as containerd does, so `id` inside the
 * container lists it among the groups.
 *
 * @example
 * ```ts
 * import type { ResolvedUser } from "./user.ts";
 * const u: ResolvedUser = { uid: 0, gid: 0, additionalGids: [0], home: "/root", name: "root" };
 * ```
 */
export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
  name?: string;
}

/** The largest id; (uid_t)-1 is reserved by the kernel as "no change". */
const MAX_ID = 0xfffffffe;

/** Lines of an /etc file, without comments and blank lines (busybox and distros both have them). */
function lines(text: string): string[][] {
  const out: string[][] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
    out.push(line.split(":"));
  }
  return out;
}

function parseId(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

/**
 * Parses /etc/passwd text. Malformed lines (too few fields, non-numeric ids) are skipped
 * rather than failing the whole container, like libc's getpwent does.
 *
 * @example
 * ```ts
 * import { parsePasswd } from "./user.ts";
 * parsePasswd("# users\nroot:x:0:0:root:/root:/bin/sh\n\n");
 * // [{ name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh" }]
 * ```
 */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of lines(text)) {
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (f.length < 4 || f[0] === "" || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? "", shell: f[6] ?? "" });
  }
  return out;
}

/**
 * Parses /etc/group text (comments, blank lines and malformed lines skipped).
 *
 * @example
 * ```ts
 * import { parseGroup } from "./user.ts";
 * parseGroup("extra:x:2000:app,bob\n"); // [{ name: "extra", gid: 2000, members: ["app", "bob"] }]
 * ```
 */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of lines(text)) {
    const gid = parseId(f[2]);
    if (f.length < 3 || f[0] === "" || gid === undefined) continue;
    const members = (f[3] ?? "").split(",").map((m) => m.trim()).filter((m) => m !== "");
    out.push({ name: f[0], gid, members });
  }
  return out;
}

function checkId(n: number, field: string): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_ID) {
    throw new InvalidArgumentError(`${field} must be an integer in 0..${MAX_ID}: got ${n}`);
  }
  return n;
}

/**
 * Resolves a user request against the image's passwd/group texts.
 *
 * Forms: "" (root), "uid", "name", "uid:gid", "name:group", "uid:group", "name:gid", or the CRI
 * object form. A numeric uid need not exist in passwd (gid 0 unless given, home "/"); a name
 * must. The supplementary groups are the primary gid, every group in /etc/group that lists the
 * user by name (unless `strict`: CRI SupplementalGroupsPolicy Strict), then `extraGids` (CRI
 * supplemental_groups), without duplicates.
 *
 * @throws InvalidArgumentError when a name is not found or an id is malformed.
 * @example
 * ```ts
 * import { resolveUser } from "./user.ts";
 * resolveUser("1234", undefined, undefined); // { uid: 1234, gid: 0, additionalGids: [0], home: "/" }
 * resolveUser({ uid: 1000, gid: 5 }, "app:x:1000:1000::/home/app:", "");
 * // { uid: 1000, gid: 5, additionalGids: [5], home: "/home/app", name: "app" }
 * ```
 */
export function resolveUser(
  user: UserRequest,
  passwd: string | undefined,
  group: string | undefined,
  extraGids: readonly number[] = [],
  /** SupplementalGroupsPolicy Strict: the image's /etc/group memberships are not added. */
  strict = false,
): ResolvedUser {
  const users = passwd === undefined ? [] : parsePasswd(passwd);
  const groups = group === undefined ? [] : parseGroup(group);

  // Split the request into a user part and an optional group part, each a number or a name.
  let userPart: number | string;
  let groupPart: number | string | undefined;
  if (typeof user === "string") {
    const colon = user.indexOf(":");
    const u = colon < 0 ? user : user.slice(0, colon);
    const g = colon < 0 ? undefined : user.slice(colon + 1);
    if (g !== undefined && g === "") {
      throw new InvalidArgumentError(`invalid user "${user}": empty group after ":"`);
    }
    if (u === "" && g !== undefined) {
      throw new InvalidArgumentError(`invalid user "${user}": empty user before ":"`);
    }
    userPart = u === "" ? 0 : /^\d+$/.test(u) ? checkId(Number(u), "user uid") : u;
    groupPart = g === undefined ? undefined : /^\d+$/.test(g) ? checkId(Number(g), "user gid") : g;
  } else {
    if (user.name !== undefined && user.name !== "") userPart = user.name;
    else userPart = checkId(user.uid ?? 0, "user.uid");
    groupPart = user.gid === undefined ? undefined : checkId(user.gid, "user.gid");
  }

  let entry: PasswdEntry | undefined;
  let uid: number;
  if (typeof userPart === "string") {
    entry = users.find((e) => e.name === userPart);
    if (!entry) {
      throw new InvalidArgumentError(
        `unable to find user ${userPart}: no matching entries in passwd file`,
      );
    }
    uid = entry.uid;
  } else {
    uid = userPart;
    entry = users.find((e) => e.uid === uid);
  }

  let gid: number;
  if (groupPart === undefined) gid = entry?.gid ?? 0;
  else if (typeof groupPart === "number") gid = groupPart;
  else {
    const name = groupPart;
    const g = groups.find((e) => e.name === name);
    if (!g) {
      throw new InvalidArgumentError(
        `unable to find group ${name}: no matching entries in group file`,
      );
    }
    gid = g.gid;
  }

  extraGids.forEach((g, i) => checkId(g, `supplementalGroups[${i}]`));
  const additional = [gid];
  if (entry && !strict) {
    const name = entry.name;
    for (const g of groups) if (g.members.includes(name)) additional.push(g.gid);
  }
  additional.push(...extraGids);

  const resolved: ResolvedUser = {
    uid,
    gid,
    additionalGids: [...new Set(additional)],
    home: entry?.home ? entry.home : "/",
  };
  if (entry) resolved.name = entry.name;
  return resolved;
}

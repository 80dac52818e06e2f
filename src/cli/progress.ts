/**
 * The pull progress display: on a terminal, one redrawn line per blob with a bar, bytes and
 * state; elsewhere (CI logs, pipes) one plain line per state change, so logs stay readable.
 *
 * @example
 * ```ts
 * const p = new PullProgressView(Deno.stdout.isTerminal());
 * p.update([{ ref: "layer-sha256:ab…", state: "downloading", offset: 10, total: 100, mediaType: "" }]);
 * p.finish();
 * ```
 */
import { formatBytes } from "./output.ts";

export interface BlobStatus {
  ref: string;
  state: string;
  offset: number;
  total: number;
  mediaType: string;
}

const enc = new TextEncoder();
const BAR = 30;

function shortRef(ref: string): string {
  // "layer-sha256:<hex>" → "layer-sha256:0123456789ab"
  return ref.replace(/(sha256|sha512):([0-9a-f]{12})[0-9a-f]+/, "$1:$2");
}

export class PullProgressView {
  #rows = new Map<string, BlobStatus>();
  #drawn = 0;
  #started = performance.now();
  #lastPlain = new Map<string, string>();

  constructor(
    readonly tty: boolean,
    readonly out: (s: string) => void = (s) => void Deno.stdout.writeSync(enc.encode(s)),
  ) {}

  update(statuses: BlobStatus[]): void {
    for (const s of statuses) this.#rows.set(s.ref, s);
    if (this.tty) this.#redraw();
    else {
      for (const s of statuses) {
        if (this.#lastPlain.get(s.ref) === s.state) continue;
        this.#lastPlain.set(s.ref, s.state);
        this.out(`${shortRef(s.ref)}: ${s.state}${s.total ? ` (${formatBytes(s.total)})` : ""}\n`);
      }
    }
  }

  #line(s: BlobStatus): string {
    const name = shortRef(s.ref).padEnd(34);
    if (s.state === "downloading" && s.total > 0) {
      const frac = Math.min(1, s.offset / s.total);
      const fill = Math.round(frac * BAR);
      return `${name} ${s.state.padEnd(11)} |${"█".repeat(fill)}${" ".repeat(BAR - fill)}| ${
        formatBytes(s.offset)
      }/${formatBytes(s.total)}`;
    }
    return `${name} ${s.state.padEnd(11)} ${s.total ? formatBytes(s.total) : ""}`;
  }

  #redraw(): void {
    let text = this.#drawn ? `\x1b[${this.#drawn}A` : "";
    const elapsed = ((performance.now() - this.#started) / 1000).toFixed(1);
    const lines = [...this.#rows.values()].map((s) => this.#line(s));
    lines.push(`elapsed: ${elapsed} s`);
    for (const l of lines) text += `\x1b[2K${l}\n`;
    this.#drawn = lines.length;
    this.out(text);
  }

  /** Final summary line. */
  finish(summary?: string): void {
    if (this.tty) this.#redraw();
    if (summary) this.out(`${summary}\n`);
  }
}

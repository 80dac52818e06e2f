/**
 * A small PNG chart renderer for the benchmark report, with no dependencies beyond `node:zlib`:
 * an RGBA raster, a built-in 5×7 bitmap font, strip plots of latency samples with their p50 and
 * p99 marked, and a PNG encoder (filter 0 scanlines, deflate, CRC-32 per chunk).
 *
 * @example
 * ```ts
 * import { renderStripChart } from "./chart.ts";
 * const png = renderStripChart("Pod start", [{
 *   title: "pod start, sequential",
 *   unit: "s",
 *   rows: [
 *     { label: "k8scontainerd", color: OURS, samples: [0.17, 0.18, 0.2] },
 *     { label: "containerd", color: CONTAINERD, samples: [0.15, 0.16, 0.17] },
 *   ],
 * }]);
 * await Deno.writeFile("latency.png", png);
 * ```
 */
import { deflateSync } from "node:zlib";

/** An RGB colour, 0–255 per channel. */
export type Rgb = readonly [number, number, number];

export const OURS: Rgb = [31, 119, 180];
export const CONTAINERD: Rgb = [230, 115, 0];
const BLACK: Rgb = [20, 20, 20];
const GREY: Rgb = [110, 110, 110];
const GRID: Rgb = [225, 225, 225];

// ---------------------------------------------------------------- PNG encoding

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309, as PNG uses it) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** The eight bytes every PNG file starts with. */
export const PNG_SIGNATURE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

/**
 * Encodes 8-bit RGBA pixels (row-major, 4 bytes a pixel) as a PNG file.
 *
 * @example
 * ```ts
 * const png = encodePng(1, 1, new Uint8Array([255, 0, 0, 255])); // one red pixel
 * ```
 */
export function encodePng(width: number, height: number, rgba: Uint8Array): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`encodePng: bad size ${width}×${height}`);
  }
  if (rgba.length !== width * height * 4) {
    throw new RangeError(
      `encodePng: ${rgba.length} bytes of pixels for ${width}×${height} (want ${
        width * height * 4
      })`,
    );
  }
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, 6, 0, 0, 0], 8); // bit depth 8, colour type 6 (RGBA), deflate, filter 0, no interlace
  const stride = width * 4;
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0; // filter: none
    raw.set(rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const idat = new Uint8Array(deflateSync(raw, { level: 9 }));
  const parts = [
    PNG_SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

// ---------------------------------------------------------------- raster and font

// 5×7 glyphs: seven rows of five bits each (bit 4 is the leftmost column), as hex pairs; g j p q y
// have an eighth row, below the baseline.
const FONT: Record<string, string> = {
  " ": "00000000000000",
  "0": "0e11131519110e",
  "1": "040c040404040e",
  "2": "0e11010204081f",
  "3": "1f02040201110e",
  "4": "02060a121f0202",
  "5": "1f101e0101110e",
  "6": "0608101e11110e",
  "7": "1f010204080808",
  "8": "0e11110e11110e",
  "9": "0e11110f01020c",
  "A": "0e11111f111111",
  "B": "1e11111e11111e",
  "C": "0e11101010110e",
  "D": "1c12111111121c",
  "E": "1f10101e10101f",
  "F": "1f10101e101010",
  "G": "0e11101711110f",
  "H": "1111111f111111",
  "I": "0e04040404040e",
  "J": "0702020202120c",
  "K": "11121418141211",
  "L": "1010101010101f",
  "M": "111b1515111111",
  "N": "11111915131111",
  "O": "0e11111111110e",
  "P": "1e11111e101010",
  "Q": "0e11111115120d",
  "R": "1e11111e141211",
  "S": "0f10100e01011e",
  "T": "1f040404040404",
  "U": "1111111111110e",
  "V": "11111111110a04",
  "W": "1111111515150a",
  "X": "11110a040a1111",
  "Y": "1111110a040404",
  "Z": "1f01020408101f",
  "a": "00000e010f110f",
  "b": "1010161911111e",
  "c": "00000e1010110e",
  "d": "01010d1311110f",
  "e": "00000e111f100e",
  "f": "0609081c080808",
  "g": "00000f11110f010e",
  "h": "10101619111111",
  "i": "04000c0404040e",
  "j": "020006020202120c",
  "k": "10101214181412",
  "l": "0c04040404040e",
  "m": "00001a15151111",
  "n": "00001619111111",
  "o": "00000e1111110e",
  "p": "00001e11111e1010",
  "q": "00000f11110f0101",
  "r": "00001619101010",
  "s": "00000f100e011e",
  "t": "08081c08080906",
  "u": "0000111111130d",
  "v": "00001111110a04",
  "w": "0000111115150a",
  "x": "0000110a040a11",
  "y": "00001111110f010e",
  "z": "00001f0204081f",
  ".": "00000000000c0c",
  ",": "000000000c0408",
  ":": "000c0c000c0c00",
  ";": "000c0c000c0408",
  "-": "0000001f000000",
  "_": "0000000000001f",
  "/": "00010204081000",
  "(": "02040808080402",
  ")": "08040202020408",
  "[": "0e08080808080e",
  "]": "0e02020202020e",
  "%": "18190204081303",
  "=": "00001f001f0000",
  "+": "0004041f040400",
  "<": "02040810080402",
  ">": "08040201020408",
  "'": "04040800000000",
  '"': "0a0a0a00000000",
  "?": "0e110102040004",
  "!": "04040404040004",
  "#": "0a0a1f0a1f0a0a",
  "*": "0004150e150400",
  "|": "04040404040404",
};
const UNKNOWN = "1f11111111111f";

/** Width in pixels of `text` drawn at `scale` (6 columns a character: 5 of glyph, 1 of gap). */
export function textWidth(text: string, scale = 1): number {
  return text.length * 6 * scale - (text.length ? scale : 0);
}

/** An RGBA image being drawn on; starts white and opaque. */
export class Raster {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Uint8Array(width * height * 4).fill(255);
  }

  /** Sets one pixel; outside the image it does nothing. */
  set(x: number, y: number, [r, g, b]: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 4;
    this.data[i] = r;
    this.data[i + 1] = g;
    this.data[i + 2] = b;
    this.data[i + 3] = 255;
  }

  /** The pixel at (x, y) as [r, g, b, a]. */
  get(x: number, y: number): [number, number, number, number] {
    const i = (y * this.width + x) * 4;
    return [this.data[i], this.data[i + 1], this.data[i + 2], this.data[i + 3]];
  }

  /** Fills the rectangle [x, x+w) × [y, y+h). */
  fillRect(x: number, y: number, w: number, h: number, c: Rgb): void {
    const x0 = Math.max(0, Math.round(x)), y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w)),
      y1 = Math.min(this.height, Math.round(y + h));
    for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) this.set(xx, yy, c);
  }

  /** Draws `text` with its top-left corner at (x, y), each font pixel a `scale`×`scale` block. */
  text(x: number, y: number, text: string, c: Rgb, scale = 1): void {
    for (let k = 0; k < text.length; k++) {
      const glyph = FONT[text[k]] ?? UNKNOWN;
      for (let row = 0; row < glyph.length / 2; row++) {
        const bits = parseInt(glyph.slice(row * 2, row * 2 + 2), 16);
        for (let col = 0; col < 5; col++) {
          if (bits & (0x10 >> col)) {
            this.fillRect(x + (k * 6 + col) * scale, y + row * scale, scale, scale, c);
          }
        }
      }
    }
  }

  /** Encodes the image as PNG. */
  png(): Uint8Array {
    return encodePng(this.width, this.height, this.data);
  }
}

// ---------------------------------------------------------------- strip plots

/** One distribution: its samples drawn as dots, with p50 and p99 marked. */
export interface Series {
  label: string;
  color: Rgb;
  samples: number[];
}

/** One panel: a shared horizontal axis (from 0) for a few series measured in one unit. */
export interface Panel {
  title: string;
  unit: string;
  rows: Series[];
}

/** Nearest-rank percentile, as the report's tables compute it. */
export function percentileOf(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** A round axis maximum ≥ `max` and its tick step (1, 2 or 5 × a power of ten, 4–10 ticks). */
export function niceAxis(max: number): { max: number; step: number } {
  if (!(max > 0)) return { max: 1, step: 0.2 };
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw)!;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

function fmt(x: number): string {
  if (x === 0) return "0";
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return Number(x.toFixed(digits)).toString();
}

const S = 2; // font scale for labels
const LINE = 7 * S;
const LABEL_W = 300;
const VALUE_W = 280;
const PLOT_W = 560;
const ROW_H = 30;
const MARGIN = 16;

/**
 * Draws panels of strip plots, one row per series: every sample a dot (spread over the row's
 * height so ties stay visible), a thick bar at p50 and a thin one at p99, the two values printed
 * at the right. Returns the PNG.
 */
export function renderStripChart(title: string, panels: Panel[], note = ""): Uint8Array {
  const width = MARGIN * 2 + LABEL_W + PLOT_W + VALUE_W;
  const panelH = (p: Panel) => LINE + 10 + p.rows.length * ROW_H + LINE + 18;
  const height = MARGIN * 2 + LINE * 2 + 16 + (note ? LINE + 8 : 0) +
    panels.reduce((n, p) => n + panelH(p), 0);
  const r = new Raster(width, height);
  let y = MARGIN;
  r.text(MARGIN, y, title, BLACK, S);
  y += LINE + 8;
  // Legend: the colours, and what the marks mean.
  let x = MARGIN;
  for (const [name, c] of [["k8scontainerd", OURS], ["containerd 1.6", CONTAINERD]] as const) {
    r.fillRect(x, y + 2, 10, 10, c);
    r.text(x + 16, y, name, BLACK, S);
    x += 16 + textWidth(name, S) + 24;
  }
  r.fillRect(x, y - 2, 5, LINE + 4, GREY);
  r.text(x + 12, y, "p50", BLACK, S);
  x += 12 + textWidth("p50", S) + 20;
  r.fillRect(x, y - 2, 2, LINE + 4, GREY);
  r.text(x + 9, y, "p99", BLACK, S);
  x += 9 + textWidth("p99", S) + 20;
  r.fillRect(x, y + 5, 3, 3, GREY);
  r.text(x + 10, y, "one sample", BLACK, S);
  y += LINE + 8;
  if (note) {
    r.text(MARGIN, y, note, GREY, S);
    y += LINE + 8;
  }
  const px0 = MARGIN + LABEL_W;
  for (const p of panels) {
    r.text(MARGIN, y, `${p.title} (${p.unit})`, BLACK, S);
    y += LINE + 10;
    const all = p.rows.flatMap((s) => s.samples);
    const axis = niceAxis(Math.max(...all, 0));
    const xOf = (v: number) => px0 + (Math.min(v, axis.max) / axis.max) * PLOT_W;
    const top = y;
    const bottom = y + p.rows.length * ROW_H;
    for (let t = 0; t <= axis.max + axis.step / 2; t += axis.step) {
      r.fillRect(xOf(t), top, 1, bottom - top, GRID);
    }
    p.rows.forEach((s, i) => {
      const ry = top + i * ROW_H;
      r.text(MARGIN + 8, ry + (ROW_H - LINE) / 2, s.label, s.color, S);
      if (!s.samples.length) {
        r.text(px0 + 4, ry + (ROW_H - LINE) / 2, "no samples", GREY, S);
        return;
      }
      // Dots spread vertically by rank, so many equal samples read as a column, not one dot.
      s.samples.forEach((v, k) => {
        const dy = 5 + ((k * 7) % (ROW_H - 12));
        r.fillRect(xOf(v) - 1, ry + dy, 3, 3, s.color);
      });
      const p50 = percentileOf(s.samples, 50), p99 = percentileOf(s.samples, 99);
      r.fillRect(xOf(p50) - 2, ry + 2, 5, ROW_H - 4, BLACK);
      r.fillRect(xOf(p99) - 1, ry + 2, 2, ROW_H - 4, BLACK);
      r.text(
        px0 + PLOT_W + 14,
        ry + (ROW_H - LINE) / 2,
        `p50 ${fmt(p50)}  p99 ${fmt(p99)}`,
        BLACK,
        S,
      );
    });
    r.fillRect(px0, bottom, PLOT_W + 1, 1, BLACK);
    r.fillRect(px0, top, 1, bottom - top, BLACK);
    for (let t = 0; t <= axis.max + axis.step / 2; t += axis.step) {
      const label = fmt(t);
      r.fillRect(xOf(t), bottom, 1, 4, BLACK);
      r.text(xOf(t) - textWidth(label, S) / 2, bottom + 6, label, GREY, S);
    }
    y = bottom + LINE + 18;
  }
  return r.png();
}

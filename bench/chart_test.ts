import { describe, expect, it } from "../src/testing/bdd.ts";
import { inflateSync } from "node:zlib";
import {
  crc32,
  encodePng,
  niceAxis,
  OURS,
  percentileOf,
  PNG_SIGNATURE,
  Raster,
  renderStripChart,
} from "./chart.ts";

interface Chunk {
  type: string;
  data: Uint8Array;
  crc: number;
}

function chunks(png: Uint8Array): Chunk[] {
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: Chunk[] = [];
  for (let off = 8; off < png.length;) {
    const len = v.getUint32(off);
    const type = new TextDecoder().decode(png.subarray(off + 4, off + 8));
    out.push({ type, data: png.subarray(off + 8, off + 8 + len), crc: v.getUint32(off + 8 + len) });
    off += 12 + len;
  }
  return out;
}

/** Undoes filter type 0 only (what encodePng writes); any other filter byte fails the test. */
function pixels(png: Uint8Array): { width: number; height: number; rgba: Uint8Array } {
  const cs = chunks(png);
  const ihdr = new DataView(cs[0].data.buffer, cs[0].data.byteOffset, 13);
  const width = ihdr.getUint32(0), height = ihdr.getUint32(4);
  const idat = cs.filter((c) => c.type === "IDAT").map((c) => c.data);
  const raw = new Uint8Array(inflateSync(idat.length === 1 ? idat[0] : Buffer.concat(idat)));
  expect(raw.length).toEqual(height * (width * 4 + 1));
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (width * 4 + 1)]).toEqual(0);
    rgba.set(raw.subarray(y * (width * 4 + 1) + 1, (y + 1) * (width * 4 + 1)), y * width * 4);
  }
  return { width, height, rgba };
}

describe("bench chart", () => {
  it("crc32 matches the standard check value", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toEqual(0xcbf43926);
    expect(crc32(new Uint8Array())).toEqual(0);
  });

  it("encodePng writes a valid file: signature, IHDR, CRCs, IDAT inflating to the image", () => {
    const w = 3, h = 2;
    const rgba = new Uint8Array(w * h * 4);
    for (let i = 0; i < rgba.length; i++) rgba[i] = (i * 37) & 0xff;
    const png = encodePng(w, h, rgba);
    expect(png.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    const cs = chunks(png);
    expect(cs.map((c) => c.type)).toEqual(["IHDR", "IDAT", "IEND"]);
    const ihdr = new DataView(cs[0].data.buffer, cs[0].data.byteOffset, 13);
    expect([ihdr.getUint32(0), ihdr.getUint32(4)]).toEqual([3, 2]);
    expect([...cs[0].data.subarray(8)]).toEqual([8, 6, 0, 0, 0]);
    for (const c of cs) {
      const typed = new Uint8Array(4 + c.data.length);
      typed.set(new TextEncoder().encode(c.type));
      typed.set(c.data, 4);
      expect([c.type, c.crc]).toEqual([c.type, crc32(typed)]);
    }
    expect(pixels(png).rgba).toEqual(rgba);
  });

  it("encodePng refuses pixels that do not fit the size", () => {
    let err: unknown;
    try {
      encodePng(2, 2, new Uint8Array(4));
    } catch (e) {
      err = e;
    }
    expect(err instanceof RangeError).toEqual(true);
  });

  it("a drawn rectangle and text are in the decoded PNG", () => {
    const r = new Raster(40, 20);
    r.fillRect(10, 5, 4, 3, OURS);
    r.text(20, 2, "1", [0, 0, 0]);
    const { width, rgba } = pixels(r.png());
    const at = (
      x: number,
      y: number,
    ) => [...rgba.subarray((y * width + x) * 4, (y * width + x) * 4 + 4)];
    expect(at(10, 5)).toEqual([...OURS, 255]);
    expect(at(13, 7)).toEqual([...OURS, 255]);
    expect(at(14, 7)).toEqual([255, 255, 255, 255]);
    // "1": the vertical stroke is column 2 of the glyph, on every row from the second to the last.
    expect(at(22, 4)).toEqual([0, 0, 0, 255]);
    expect(at(20, 4)).toEqual([255, 255, 255, 255]);
  });

  it("niceAxis rounds up to 1/2/5 steps; percentileOf is nearest-rank", () => {
    expect(niceAxis(0.183)).toEqual({ max: 0.2, step: 0.05 });
    expect(niceAxis(8.3)).toEqual({ max: 10, step: 2 });
    expect(niceAxis(0)).toEqual({ max: 1, step: 0.2 });
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentileOf(xs, 50), percentileOf(xs, 99)]).toEqual([50, 99]);
  });

  it("renderStripChart makes a decodable PNG", () => {
    const png = renderStripChart("t", [{
      title: "pod start",
      unit: "s",
      rows: [{ label: "ours", color: OURS, samples: [0.1, 0.2, 0.3] }, {
        label: "empty",
        color: OURS,
        samples: [],
      }],
    }]);
    const { width, height } = pixels(png);
    expect(width > 100 && height > 50).toEqual(true);
  });
});

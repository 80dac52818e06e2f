import { describe, expect, it } from "../testing/bdd.ts";
import {
  decodeInteger,
  encodeInteger,
  type HeaderField,
  HpackDecoder,
  HpackEncoder,
  HpackError,
  huffmanDecode,
  huffmanEncode,
} from "./hpack.ts";

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const h = (name: string, value: string): HeaderField => ({ name, value });

// RFC 7541 Appendix C.3 / C.4: three requests sharing one dynamic table.
const REQUESTS = [
  [h(":method", "GET"), h(":scheme", "http"), h(":path", "/"), h(":authority", "www.example.com")],
  [
    h(":method", "GET"),
    h(":scheme", "http"),
    h(":path", "/"),
    h(":authority", "www.example.com"),
    h("cache-control", "no-cache"),
  ],
  [
    h(":method", "GET"),
    h(":scheme", "https"),
    h(":path", "/index.html"),
    h(":authority", "www.example.com"),
    h("custom-key", "custom-value"),
  ],
];
const REQUEST_TABLES: [[string, string][], number][] = [
  [[[":authority", "www.example.com"]], 57],
  [[["cache-control", "no-cache"], [":authority", "www.example.com"]], 110],
  [[["custom-key", "custom-value"], ["cache-control", "no-cache"], [
    ":authority",
    "www.example.com",
  ]], 164],
];

// RFC 7541 Appendix C.5 / C.6: three responses, dynamic table limited to 256 octets.
const DATE1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOC = "https://www.example.com";
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESPONSES = [
  [h(":status", "302"), h("cache-control", "private"), h("date", DATE1), h("location", LOC)],
  [h(":status", "307"), h("cache-control", "private"), h("date", DATE1), h("location", LOC)],
  [
    h(":status", "200"),
    h("cache-control", "private"),
    h("date", DATE2),
    h("location", LOC),
    h("content-encoding", "gzip"),
    h("set-cookie", COOKIE),
  ],
];
const RESPONSE_TABLES: [[string, string][], number][] = [
  [[["location", LOC], ["date", DATE1], ["cache-control", "private"], [":status", "302"]], 222],
  [[[":status", "307"], ["location", LOC], ["date", DATE1], ["cache-control", "private"]], 222],
  [[["set-cookie", COOKIE], ["content-encoding", "gzip"], ["date", DATE2]], 215],
];

function runVectors(
  decoder: HpackDecoder,
  blocks: string[],
  want: HeaderField[][],
  tables: [[string, string][], number][],
) {
  blocks.forEach((block, i) => {
    expect(decoder.decode(hex(block))).toEqual(want[i]);
    expect(decoder.table.entries).toEqual(tables[i][0]);
    expect(decoder.table.size).toBe(tables[i][1]);
  });
}

describe("hpack", () => {
  it("decodes RFC 7541 C.3 (requests without Huffman)", () => {
    runVectors(
      new HpackDecoder(),
      [
        "828684410f7777772e6578616d706c652e636f6d",
        "828684be58086e6f2d6361636865",
        "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
      ],
      REQUESTS,
      REQUEST_TABLES,
    );
  });

  it("decodes RFC 7541 C.4 (requests with Huffman)", () => {
    runVectors(
      new HpackDecoder(),
      [
        "828684418cf1e3c2e5f23a6ba0ab90f4ff",
        "828684be5886a8eb10649cbf",
        "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
      ],
      REQUESTS,
      REQUEST_TABLES,
    );
  });

  it("decodes RFC 7541 C.5 (responses without Huffman, 256-octet table, evictions)", () => {
    const d = new HpackDecoder();
    // The vectors assume SETTINGS_HEADER_TABLE_SIZE 256; the peer would signal it with a
    // size update at the start of the first block: 0x3f 0xe1 0x01 = 256.
    expect(d.decode(hex("3fe101"))).toEqual([]);
    expect(d.table.maxSize).toBe(256);
    runVectors(
      d,
      [
        `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d`,
        "4803 3330 37c1 c0bf",
        `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31`,
      ],
      RESPONSES,
      RESPONSE_TABLES,
    );
  });

  it("decodes RFC 7541 C.6 (responses with Huffman)", () => {
    const d = new HpackDecoder();
    d.table.resize(256);
    runVectors(
      d,
      [
        `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
        "4883 640e ffc1 c0bf",
        `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
      ],
      RESPONSES,
      RESPONSE_TABLES,
    );
  });

  it("decodes never-indexed literals as sensitive and leaves the table alone", () => {
    // RFC 7541 C.2.3: password: secret, never indexed.
    const d = new HpackDecoder();
    expect(d.decode(hex("100870617373776f726406736563726574"))).toEqual([
      { name: "password", value: "secret", sensitive: true },
    ]);
    expect(d.table.entries).toEqual([]);
    // C.2.2: literal without indexing, static name :path.
    expect(d.decode(hex("040c2f73616d706c652f70617468"))).toEqual([h(":path", "/sample/path")]);
    expect(d.table.size).toBe(0);
  });

  it("honours table size updates and rejects ones above the limit or after a field", () => {
    const d = new HpackDecoder({ maxTableSize: 4096 });
    d.decode(hex("410f7777772e6578616d706c652e636f6d")); // :authority www.example.com, indexed
    expect(d.table.entries.length).toBe(1);
    d.decode(hex("20")); // size 0: evicts everything
    expect(d.table.entries.length).toBe(0);
    expect(d.table.maxSize).toBe(0);
    expect(() => d.decode(hex("be"))).toThrow(HpackError); // index 62 no longer exists
    expect(() => d.decode(hex("3fe21f"))).toThrow(/exceeds the limit/); // 4097
    expect(() => d.decode(hex("8220"))).toThrow(/after a header field/);
    expect(d.decode(hex("3fe11f"))).toEqual([]); // 4096: back to the default
    expect(d.table.maxSize).toBe(4096);
  });

  it("rejects malformed blocks", () => {
    const d = new HpackDecoder();
    expect(() => d.decode(hex("80"))).toThrow(/index 0/);
    expect(() => d.decode(hex("ff00"))).toThrow(/invalid header index/); // 127: not in table
    expect(() => d.decode(hex("410f7777"))).toThrow(/truncated string/);
    expect(() => d.decode(hex("ff"))).toThrow(/truncated integer/);
    expect(() => d.decode(hex("ffffffffffff0f"))).toThrow(/overflow/);
    // Huffman: padding of 8+ bits, padding with a zero bit, EOS inside the string.
    expect(() => huffmanDecode(hex("ff"))).toThrow(/padding/);
    expect(() => huffmanDecode(hex("00"))).toThrow(/padding/); // '0' (00000) + 000 padding
    expect(() => huffmanDecode(hex("ffffffff"))).toThrow(/EOS/);
  });

  it("decodes integers: RFC 7541 C.1 and edge cases", () => {
    expect(decodeInteger(hex("0a"), 0, 5)).toEqual([10, 1]); // C.1.1
    expect(decodeInteger(hex("1f9a0a"), 0, 5)).toEqual([1337, 3]); // C.1.2
    expect(decodeInteger(hex("2a"), 0, 8)).toEqual([42, 1]); // C.1.3
    expect(decodeInteger(hex("1f00"), 0, 5)).toEqual([31, 2]); // exactly the prefix max
    expect(decodeInteger(hex("1e"), 0, 5)).toEqual([30, 1]);
    expect(decodeInteger(hex("e0"), 0, 5)).toEqual([0, 1]); // high bits ignored
    expect(decodeInteger(hex("1f8080808000"), 0, 5)).toEqual([31, 6]); // redundant zeros
    expect(decodeInteger(hex("ff80feffff0f"), 0, 8)).toEqual([2 ** 32 - 1, 6]);
    expect(encodeInteger(2 ** 32 - 1, 8)).toEqual(hex("ff80feffff0f"));
    expect(() => decodeInteger(hex("ff8080"), 0, 8)).toThrow(/truncated/);
    expect(() => decodeInteger(hex("ff81ffffff0f"), 0, 8)).toThrow(/overflow/);
    for (const prefix of [1, 4, 5, 6, 7, 8]) {
      for (
        const v of [
          0,
          1,
          (1 << prefix) - 2,
          (1 << prefix) - 1,
          1 << prefix,
          127,
          128,
          1337,
          2 ** 31,
        ]
      ) {
        const enc = encodeInteger(v, prefix);
        expect(decodeInteger(enc, 0, prefix)).toEqual([v, enc.length]);
      }
    }
    expect(encodeInteger(1337, 5)).toEqual(hex("1f9a0a"));
  });

  it("Huffman-codes every octet and matches RFC 7541 C.4.1", () => {
    expect(huffmanEncode("www.example.com")).toEqual(hex("f1e3c2e5f23a6ba0ab90f4ff"));
    let all = "";
    for (let c = 0; c < 256; c++) all += String.fromCharCode(c);
    expect(huffmanDecode(huffmanEncode(all))).toBe(all);
    expect(huffmanDecode(new Uint8Array())).toBe("");
  });

  it("round-trips through the table-free encoder without touching the decoder's table", () => {
    const fields: HeaderField[] = [
      h(":method", "POST"), // exact static match: one octet
      h(":scheme", "http"),
      h(":path", "/k8scontainerd.services.version.v1.Version/Version"),
      h(":authority", "localhost"),
      h("content-type", "application/grpc"),
      h("te", "trailers"),
      h("x-binary-bin", "\u0000\u00ff\u0080é"),
      h("", ""),
      { name: "authorization", value: "Bearer x", sensitive: true },
    ];
    const enc = new HpackEncoder();
    const d = new HpackDecoder();
    for (let i = 0; i < 3; i++) {
      const block = enc.encode(fields);
      expect(block[0]).toBe(0x83); // indexed :method POST
      expect(d.decode(block)).toEqual(fields);
      expect(d.table.size).toBe(0);
    }
    const huff = new HpackEncoder({ huffman: true });
    expect(d.decode(huff.encode(fields))).toEqual(fields);
  });

  it("round-trips through the dynamic-table encoder, with size changes and evictions", () => {
    const enc = new HpackEncoder({ dynamicTable: true, huffman: true });
    const d = new HpackDecoder();
    const reqs = [0, 1, 2, 3, 4, 5].map((i) => [
      h(":method", "POST"),
      h(":path", `/svc/Method${i % 3}`),
      h(":authority", "/run/x.sock"),
      h("grpc-timeout", `${i}S`),
      h("user-agent", "grpc-go/1.51.0"),
    ]);
    reqs.forEach((req, i) => {
      if (i === 3) enc.setTableSize(100);
      if (i === 4) enc.setTableSize(4096);
      const block = enc.encode(req);
      expect(d.decode(block)).toEqual(req);
      expect(d.table.entries).toEqual(enc.table!.entries);
      expect(d.table.size).toBe(enc.table!.size);
      if (i === 1) expect(block.length).toBeLessThan(20); // mostly dynamic references
    });
  });
});

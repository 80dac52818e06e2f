import { describe, expect, it } from "../testing/bdd.ts";
import { checkFrame, ConnectionError, readSettings, StreamError, unpad } from "./h2_frame_rules.ts";
import { encodeSettings, FLAG, FRAME, type Frame, H2_ERROR, SETTING } from "./h2_frames.ts";

const frame = (type: number, streamId: number, size: number, flags = 0): Frame => ({
  type,
  flags,
  streamId,
  payload: new Uint8Array(size),
});

function error(f: () => unknown): { kind: string; code: number; message: string } | undefined {
  try {
    f();
  } catch (e) {
    const kind = e instanceof ConnectionError
      ? "connection"
      : e instanceof StreamError
      ? "stream"
      : "other";
    return { kind, code: (e as ConnectionError).code, message: (e as Error).message };
  }
  return undefined;
}

describe("HTTP/2 frame rules", () => {
  it("stream frames on stream 0 and connection frames on a stream are connection errors", () => {
    for (
      const [t, name] of [
        [FRAME.DATA, "DATA"],
        [FRAME.HEADERS, "HEADERS"],
        [FRAME.RST_STREAM, "RST_STREAM"],
        [FRAME.CONTINUATION, "CONTINUATION"],
        [FRAME.PRIORITY, "PRIORITY"],
      ] as const
    ) {
      expect(error(() => checkFrame(frame(t, 0, 5)))).toEqual({
        kind: "connection",
        code: H2_ERROR.PROTOCOL_ERROR,
        message: `${name} on stream 0`,
      });
    }
    for (
      const [t, name] of [[FRAME.SETTINGS, "SETTINGS"], [FRAME.PING, "PING"], [
        FRAME.GOAWAY,
        "GOAWAY",
      ]] as const
    ) {
      expect(error(() => checkFrame(frame(t, 3, 8)))?.message).toBe(`${name} on a stream`);
    }
  });

  it("fixed-size frames of the wrong size: FRAME_SIZE_ERROR (a stream error for PRIORITY)", () => {
    expect(error(() => checkFrame(frame(FRAME.PING, 0, 7)))?.message).toBe(
      "PING of the wrong size",
    );
    expect(error(() => checkFrame(frame(FRAME.RST_STREAM, 1, 5)))?.code).toBe(
      H2_ERROR.FRAME_SIZE_ERROR,
    );
    expect(error(() => checkFrame(frame(FRAME.WINDOW_UPDATE, 0, 3)))?.kind).toBe("connection");
    expect(error(() => checkFrame(frame(FRAME.GOAWAY, 0, 7)))?.message).toBe("short GOAWAY");
    expect(error(() => checkFrame(frame(FRAME.SETTINGS, 0, 7)))?.message).toBe(
      "SETTINGS of the wrong size",
    );
    expect(error(() => checkFrame(frame(FRAME.SETTINGS, 0, 6, FLAG.ACK)))?.message).toBe(
      "SETTINGS ACK with a payload",
    );
    expect(error(() => checkFrame(frame(FRAME.PRIORITY, 1, 4)))).toEqual({
      kind: "stream",
      code: H2_ERROR.FRAME_SIZE_ERROR,
      message: "PRIORITY of the wrong size",
    });
    // Well-formed frames, and frame types it does not know, pass.
    for (
      const f of [
        frame(FRAME.PING, 0, 8),
        frame(FRAME.GOAWAY, 0, 20),
        frame(FRAME.DATA, 1, 0),
        frame(0x42, 0, 3),
      ]
    ) {
      expect(error(() => checkFrame(f))).toBeUndefined();
    }
  });

  it("unpad drops the padding and refuses padding longer than the frame", () => {
    const f = {
      type: FRAME.DATA,
      flags: FLAG.PADDED,
      streamId: 1,
      payload: new Uint8Array([2, 7, 8, 0, 0]),
    };
    expect([...unpad(f)]).toEqual([7, 8]);
    expect(error(() => unpad({ ...f, payload: new Uint8Array([5, 1]) }))?.message).toBe(
      "padding exceeds the frame payload",
    );
    expect(error(() => unpad({ ...f, payload: new Uint8Array(0) }))?.code).toBe(
      H2_ERROR.FRAME_SIZE_ERROR,
    );
    expect(unpad({ ...f, flags: 0 })).toBe(f.payload);
  });

  it("readSettings gives the pairs and refuses values out of range", () => {
    const payload = (id: number, v: number) => encodeSettings([[id, v]]).subarray(9);
    expect(readSettings(payload(SETTING.MAX_FRAME_SIZE, 32768))).toEqual([[
      SETTING.MAX_FRAME_SIZE,
      32768,
    ]]);
    expect(error(() => readSettings(payload(SETTING.ENABLE_PUSH, 2)))?.message).toBe(
      "ENABLE_PUSH not 0 or 1",
    );
    expect(error(() => readSettings(payload(SETTING.INITIAL_WINDOW_SIZE, 2 ** 31)))?.code).toBe(
      H2_ERROR.FLOW_CONTROL_ERROR,
    );
    expect(error(() => readSettings(payload(SETTING.MAX_FRAME_SIZE, 100)))?.message).toBe(
      "MAX_FRAME_SIZE out of range",
    );
  });
});

/**
 * The rules of RFC 9113 a frame must keep whoever sent it, checked the same way by our server
 * (h2_connection.ts) and our client (native_client.ts): which frames belong on stream 0 and
 * which never do, the sizes of fixed-size frames, padding, and the ranges of SETTINGS values.
 * What depends on a connection's state (idle and closed streams, windows, header blocks in
 * progress) stays with the connection.
 *
 * @example
 * ```ts
 * import { checkFrame, ConnectionError } from "./h2_frame_rules.ts";
 * try {
 *   checkFrame({ type: 6, flags: 0, streamId: 0, payload: new Uint8Array(7) });
 * } catch (e) {
 *   (e as ConnectionError).message; // "PING of the wrong size"
 * }
 * ```
 */
import {
  decodeSettings,
  DEFAULT_MAX_FRAME_SIZE,
  FLAG,
  FRAME,
  type Frame,
  H2_ERROR,
  MAX_WINDOW,
  SETTING,
} from "./h2_frames.ts";

/** An error that ends the connection (GOAWAY with `code`). */
export class ConnectionError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** An error that ends one stream (RST_STREAM with `code`); the connection goes on. */
export class StreamError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

const ON_STREAM_ONLY: Record<number, string> = {
  [FRAME.DATA]: "DATA",
  [FRAME.HEADERS]: "HEADERS",
  [FRAME.PRIORITY]: "PRIORITY",
  [FRAME.RST_STREAM]: "RST_STREAM",
  [FRAME.CONTINUATION]: "CONTINUATION",
};
const CONNECTION_ONLY: Record<number, string> = {
  [FRAME.SETTINGS]: "SETTINGS",
  [FRAME.PING]: "PING",
  [FRAME.GOAWAY]: "GOAWAY",
};

/** Throws ConnectionError or StreamError when `f` breaks a stateless rule. */
export function checkFrame(f: Frame): void {
  const name = ON_STREAM_ONLY[f.type];
  if (name && f.streamId === 0) {
    throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${name} on stream 0`);
  }
  const connName = CONNECTION_ONLY[f.type];
  if (connName && f.streamId !== 0) {
    throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${connName} on a stream`);
  }
  const n = f.payload.length;
  switch (f.type) {
    case FRAME.PRIORITY:
      if (n !== 5) throw new StreamError(H2_ERROR.FRAME_SIZE_ERROR, "PRIORITY of the wrong size");
      return;
    case FRAME.RST_STREAM:
      if (n !== 4) {
        throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "RST_STREAM of the wrong size");
      }
      return;
    case FRAME.PING:
      if (n !== 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "PING of the wrong size");
      return;
    case FRAME.GOAWAY:
      if (n < 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "short GOAWAY");
      return;
    case FRAME.WINDOW_UPDATE:
      if (n !== 4) {
        throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size");
      }
      return;
    case FRAME.SETTINGS:
      if (f.flags & FLAG.ACK) {
        if (n !== 0) {
          throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
        }
      } else if (n % 6 !== 0) {
        throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "SETTINGS of the wrong size");
      }
      return;
  }
}

/** The payload of a DATA or HEADERS frame without its padding (PADDED flag). */
export function unpad(f: Frame): Uint8Array {
  if (!(f.flags & FLAG.PADDED)) return f.payload;
  if (f.payload.length < 1) {
    throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "PADDED frame without pad length");
  }
  const pad = f.payload[0];
  if (pad >= f.payload.length) {
    throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "padding exceeds the frame payload");
  }
  return f.payload.subarray(1, f.payload.length - pad);
}

/** The (id, value) pairs of a checked SETTINGS payload; a value out of its range throws. */
export function readSettings(payload: Uint8Array): [number, number][] {
  const out = decodeSettings(payload);
  for (const [id, value] of out) {
    if (id === SETTING.ENABLE_PUSH && value > 1) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "ENABLE_PUSH not 0 or 1");
    }
    if (id === SETTING.INITIAL_WINDOW_SIZE && value > MAX_WINDOW) {
      throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large");
    }
    if (id === SETTING.MAX_FRAME_SIZE && (value < DEFAULT_MAX_FRAME_SIZE || value > 0xffffff)) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range");
    }
  }
  return out;
}

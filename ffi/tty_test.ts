import { describe, expect, it } from "../src/testing/bdd.ts";
import { close, O_CLOEXEC, O_NOCTTY, O_RDWR, open } from "./fs.ts";
import { readAsync, writeAsync } from "./socket.ts";
import { getWinsize, openPty, setWinsize } from "./tty.ts";

describe("tty", () => {
  it("opens a pty; TIOCSWINSZ then TIOCGWINSZ reads the size back on both sides", () => {
    const { master, slavePath } = openPty();
    try {
      expect(slavePath).toMatch(/^\/dev\/pts\/\d+$/);
      setWinsize(master, 30, 100);
      expect(getWinsize(master)).toEqual({ rows: 30, cols: 100 });
      const slave = open(slavePath, O_RDWR | O_NOCTTY | O_CLOEXEC);
      try {
        expect(getWinsize(slave)).toEqual({ rows: 30, cols: 100 });
      } finally {
        close(slave);
      }
    } finally {
      close(master);
    }
  });

  it("data written to the slave is read from the master; a hung-up master reads EOF", async () => {
    const { master, slavePath } = openPty();
    try {
      const slave = open(slavePath, O_RDWR | O_NOCTTY | O_CLOEXEC);
      await writeAsync(slave, new TextEncoder().encode("hi\n"));
      const buf = new Uint8Array(64);
      const n = await readAsync(master, buf);
      expect(new TextDecoder().decode(buf.subarray(0, n))).toBe("hi\r\n");
      close(slave);
      expect(await readAsync(master, buf)).toBe(0);
    } finally {
      close(master);
    }
  });
});

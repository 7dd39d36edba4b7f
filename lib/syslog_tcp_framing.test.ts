// Unit tests of RFC 6587 deframing as daemons send it: octet-counted and LF-framed frames mixed,
// split at every byte, long ones read through, and the streams that cannot be read on.

import { describe, expect, test } from "bun:test";
import { MAX_MESSAGE } from "./framing.ts";
import { SyslogTcpDeframer, type TcpFrame } from "./syslog_tcp_framing.ts";

/** The frames as text, a message as itself and a long one as `oversize N`. */
const shown = (frames: TcpFrame[]) =>
  frames.map((frame) => ("message" in frame ? Buffer.from(frame.message).toString() : `oversize ${frame.oversize}`));

/** Feeds `bytes` cut into pieces of `size`, and the frames they made. */
function read(bytes: Uint8Array, size = bytes.length, max = MAX_MESSAGE) {
  const deframer = new SyslogTcpDeframer(max);
  const frames: TcpFrame[] = [];
  for (let at = 0; at < bytes.length; at += size) frames.push(...deframer.push(bytes.subarray(at, at + size)));
  return { frames: shown(frames), deframer };
}

describe("SyslogTcpDeframer", () => {
  const mixed = Buffer.from("11 <13>a\nb c d<14>plain line\n6 <15>\n\n<16>after an empty line\n3 <1>");

  test("octet-counted and LF-framed frames are told apart frame by frame, however the bytes are cut", () => {
    const expected = ["<13>a\nb c d", "<14>plain line", "<15>\n\n", "<16>after an empty line", "<1>"];
    for (let size = 1; size <= mixed.length; size++) {
      const { frames, deframer } = read(mixed, size);
      expect(frames).toEqual(expected);
      expect(deframer.midFrame).toBe(false);
    }
  });

  test("frames() reads a chunk only as far as its frames are asked for, and the next chunk after it", () => {
    const deframer = new SyslogTcpDeframer();
    const first = deframer.frames(Buffer.from("<13>a\n5 <13>b0 bad"));
    expect(shown([first.next().value as TcpFrame])).toEqual(["<13>a"]);
    expect(deframer.midFrame).toBe(false); // the counted frame after it is not read yet
    expect(shown([first.next().value as TcpFrame])).toEqual(["<13>b"]);
    expect(deframer.error).toBeUndefined();
    expect(first.next().done).toBe(true);
    expect(deframer.error).toBe("an octet count starts with 0");
  });

  test("an empty line is an empty message, which the intake skips and counts", () => {
    expect(read(Buffer.from("\n\n<13>x\n")).frames).toEqual(["", "", "<13>x"]);
  });

  test("a message of the longest size is kept; one byte more is read through and reported, in both forms", () => {
    const longest = "x".repeat(MAX_MESSAGE);
    const bytes = Buffer.from(
      `${MAX_MESSAGE} ${longest}${MAX_MESSAGE + 1} ${longest}y${longest}\n${longest}z\n5 after`,
    );
    for (const size of [1000, 65536, bytes.length]) {
      const { frames, deframer } = read(bytes, size);
      expect(frames).toEqual([longest, `oversize ${MAX_MESSAGE + 1}`, longest, `oversize ${MAX_MESSAGE + 1}`, "after"]);
      expect(deframer.buffered).toBe(0);
    }
  });

  test("what is held of a frame never passes the longest message, however long the frame says it is", () => {
    const deframer = new SyslogTcpDeframer(100);
    deframer.push(Buffer.from("999999999 "));
    for (let i = 0; i < 1000; i++) {
      expect(deframer.push(new Uint8Array(1000))).toEqual([]);
      expect(deframer.buffered).toBeLessThanOrEqual(100);
    }
    const line = new SyslogTcpDeframer(100);
    for (let i = 0; i < 1000; i++) line.push(new Uint8Array(1000).fill(0x61));
    expect(line.buffered).toBe(0);
    expect(shown(line.push(Buffer.from("\n")))).toEqual(["oversize 1000000"]);
  });

  test.each([
    ["0 x", "an octet count starts with 0"],
    ["12x <13>hello", "an octet count followed by byte 0x78, not a space"],
    ["12\n<13>hello", "an octet count followed by byte 0x0a, not a space"],
    ["1234567890 x", "an octet count of over 9 digits"],
  ])("%j cannot be read on: %s", (text, why) => {
    for (const size of [1, 3, text.length]) {
      const { deframer, frames } = read(Buffer.from(`5 <13>a${text}`), size);
      expect(frames).toEqual(["<13>a"]);
      expect(deframer.error).toBe(why);
      expect(deframer.push(Buffer.from("5 <13>b"))).toEqual([]);
    }
  });

  test("at the end of the stream a line without its LF is a message; a counted frame cut short is said", () => {
    const line = new SyslogTcpDeframer();
    line.push(Buffer.from("<13>no LF at the end"));
    expect(shown([line.end() as TcpFrame])).toEqual(["<13>no LF at the end"]);
    const counted = new SyslogTcpDeframer();
    counted.push(Buffer.from("20 <13>short"));
    expect(counted.end()).toBe("the connection ended inside an octet-counted frame, after 9 of its 20 bytes");
    const count = new SyslogTcpDeframer();
    count.push(Buffer.from("20"));
    expect(count.end()).toBe("the connection ended inside an octet-counted frame, after its octet count");
    expect(new SyslogTcpDeframer().end()).toBeUndefined();
  });
});

// Datagrams whose cost an outsider sizes (issue 17): what any local process may send to slps's
// UDP port. The benchmark of filter costs and test/datagrams.test.ts send the same ones.

import { MAX_MESSAGE } from "../lib.ts";

/** RFC 5424 up to its structured data: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID. */
const HEADER = "<13>1 2026-01-05T10:11:12.000Z web cron 42 - ";

/** 9,000 elements with IDs of their own, every fourth with a parameter, then text up to `bytes`: the 62 KB. */
function manyElements(bytes: number): Buffer {
  const elements = Array.from({ length: 9000 }, (_, n) => `[${n.toString(36)}${n % 4 ? "" : ' a="b"'}]`);
  const head = HEADER + elements.join("");
  return Buffer.from(`${head} ${"j".repeat(bytes - head.length - 1)}`);
}

/** One element whose value fills the datagram, half of it escapes that the parser undoes. */
function oneHugeElement(bytes: number): Buffer {
  const head = `${HEADER}[big v="`;
  const tail = `"] job ran`;
  const value = '\\"x'.repeat(Math.floor((bytes - head.length - tail.length) / 3));
  return Buffer.from(head + value + tail);
}

/** RFC 5424 with a host name and an app name of 30,000 characters each: tokens as long as they come. */
function longFields(bytes: number): Buffer {
  const half = Math.floor((bytes - 60) / 2);
  return Buffer.from(`<13>1 2026-01-05T10:11:12Z ${"h".repeat(half)} ${"a".repeat(half)} 1 - - job ran`);
}

/** A valid 3164 header and `fill` up to `bytes`: 0xff is not UTF-8 anywhere. */
function filled(bytes: number, fill: number): Buffer {
  const head = Buffer.from("<13>Jan  5 10:11:12 web cron[1]: ");
  return Buffer.concat([head, Buffer.alloc(bytes - head.length, fill)]);
}

/** Every kind, by name; `plain` is a usual small message, `maximal` the largest a plain one can be. */
export const HOSTILE = {
  plain: Buffer.from("<13>Jan  5 10:11:12 web cron[1]: job ran for user backup"),
  maximal: filled(MAX_MESSAGE, 0x78),
  "9,000 SD elements": manyElements(62_000),
  "maximal SD element": oneHugeElement(MAX_MESSAGE),
  "maximal fields": longFields(MAX_MESSAGE),
  "invalid UTF-8": filled(MAX_MESSAGE, 0xff),
} as const;

export type HostileKind = keyof typeof HOSTILE;

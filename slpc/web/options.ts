// The flags of the live view (--web and its company), spread into slpc's table of options, and
// their check at start: every combination that could not work, or would be unsafe, is one line
// and exit 2 before a socket opens.

import { readFileSync, statSync } from "node:fs";
import { isIP } from "node:net";
import {
  type Address,
  formatAddress,
  type Options,
  optional,
  originOf,
  parseBytes,
  parseCount,
  parseHostPort,
  parseList,
  parseText,
  reason,
  UsageError,
} from "../../lib.ts";
import { type Access, canonicalHost, makeToken, tokenFromFile } from "./access.ts";

const WEB = ""; // HOST:PORT to serve the live view on, over HTTP; empty: off
const WEB_TOKEN_FILE = ""; // the view's token, from this file; empty: a random one, printed at start
const WEB_HOST = ""; // names a browser may reach the view by besides --web's address
const WEB_HISTORY = "8MiB"; // recent messages kept for a page opened now, and for one that reconnects
const WEB_VIEWERS = "8"; // pages and other readers of the view at once

/** The least --web-history: a viewer must find a message still held when its turn comes. */
const MIN_HISTORY = 1024 * 1024;
const MAX_HISTORY = 1024 ** 3;
/** The most --web-host names: each costs a comparison for every request. */
const MAX_NAMES = 32;
/** The largest token file read: a token is one short line. */
const MAX_TOKEN_FILE = 4096;

// biome-ignore format: a table, one option a row (its help on a second line when it is long)
export const WEB_OPTIONS = {
  web: { default: WEB, arg: "HOST:PORT", parse: optional(parseHostPort),
    help: "serve a live view of every message slpc receives at http://HOST:PORT/, beside the output, never " +
      "instead of it (see docs/web.md); off by default. Not on a loopback address only with --web-token-file" },
  webTokenFile: { default: WEB_TOKEN_FILE, arg: "FILE", parse: parseText,
    help: "the view's token, one line of 16 to 256 letters, digits and . _ ~ -; without it, a random token, " +
      "printed once at start in the address to open" },
  webHost: { default: WEB_HOST, arg: "NAME", parse: parseWebHosts, repeatable: true,
    help: "a name browsers reach the view by (a reverse proxy's, or this machine's when --web listens on " +
      "every address): requests whose Host header names neither it nor --web's address are refused" },
  webHistory: { default: WEB_HISTORY, arg: "BYTES", parse: parseWebHistory,
    help: "recent messages the view keeps, for a page opened now and for one that reconnects: from 1MiB to 1GiB" },
  webViewers: { default: WEB_VIEWERS, arg: "N", parse: parseCount(1, 1000),
    help: "pages (and curl) that may follow the view at once; one more is refused until one leaves (1 to 1000)" },
} satisfies Options;

type WebValues = {
  web: Address | undefined;
  webTokenFile: string;
  webHost: string[];
  webHistory: number;
  webViewers: number;
};

/** What the view is started with, once checked. */
export interface WebSettings {
  listen: Address;
  access: Access;
  /** Where the token came from, for the start line; undefined when slpc made it. */
  tokenFile?: string;
  historyBytes: number;
  viewers: number;
}

function parseWebHosts(text: string): string[] {
  const names = parseList(text).map((name) => name.toLowerCase());
  if (names.length > MAX_NAMES) throw new Error(`${names.length} names; at most ${MAX_NAMES}`);
  return names.map((name) => {
    const written = isIP(name) === 6 ? `[${name}]` : name;
    const canonical = /^[a-z0-9._-]{1,253}$|^\[[0-9a-f:.]+\]$/.test(written) ? canonicalHost(written) : undefined;
    if (canonical === undefined)
      throw new Error(`'${name.slice(0, 60)}' is not a host name or address (no port: any port is taken)`);
    // As a browser writes it in Host: 127.1 is 127.0.0.1.
    return canonical;
  });
}

function parseWebHistory(text: string): number {
  const bytes = parseBytes(text, MAX_HISTORY);
  if (bytes < MIN_HISTORY) throw new Error("must be at least 1MiB, so that a viewer finds each message still held");
  return bytes;
}

/** An address as URLs write it, so that each spelling of one is known: 0:0:0:0:0:0:0:1 is [::1]. */
const canonical = (address: string) => canonicalHost(isIP(address) === 6 ? `[${address}]` : address) ?? address;
const isLoopback = (address: string) => /^(127\.|\[::1\]$|\[::ffff:7f)/.test(canonical(address));
const isUnspecified = (address: string) => /^(0\.0\.0\.0|\[::\])$/.test(canonical(address));

/**
 * The view's settings, or undefined without --web; a UsageError for a combination that cannot
 * work or would be unsafe. `lookup` resolves --web's host, to tell whether only this machine reaches it.
 */
export async function webSettings(
  options: WebValues,
  lookup: (host: string) => Promise<{ address: string }[]>,
): Promise<WebSettings | undefined> {
  const { web } = options;
  if (!web) {
    const stray = ["webTokenFile", "webHost", "webHistory", "webViewers"].map((key) => originOf(options, key));
    const given = stray.find((origin) => origin !== undefined);
    if (given) throw new UsageError(`${given}: only with --web HOST:PORT, which turns the live view on`);
    return undefined;
  }
  const shown = `--web ${formatAddress(web)}`;
  let addresses: string[];
  try {
    addresses = isIP(web.host) ? [web.host] : (await lookup(web.host)).map((entry) => entry.address);
  } catch (error) {
    throw new UsageError(`${shown}: cannot resolve ${web.host}: ${reason(error)}`);
  }
  if (addresses.length === 0) throw new UsageError(`${shown}: ${web.host} has no address`);
  if (isUnspecified(web.host) && options.webHost.length === 0) {
    const why = "no browser's Host header names it, so every request would be refused";
    throw new UsageError(`${shown}: every address of this machine: ${why}; name the ones browsers use with --web-host`);
  }
  const loopback = addresses.every(isLoopback);
  if (!loopback && !options.webTokenFile) {
    const why = "other machines reach it, so its token must be one you keep in a file, not one printed in slpc's log";
    throw new UsageError(`${shown}: not a loopback address: ${why} (--web-token-file FILE)`);
  }
  const token = options.webTokenFile ? readToken(options.webTokenFile) : makeToken();
  return {
    listen: web,
    access: { token, listen: web, names: options.webHost },
    tokenFile: options.webTokenFile || undefined,
    historyBytes: options.webHistory,
    viewers: options.webViewers,
  };
}

function readToken(file: string): string {
  const where = `--web-token-file ${file}`;
  try {
    // Its kind first: a FIFO would block the read, and a device could be endless.
    const stat = statSync(file);
    if (!stat.isFile()) throw new Error("not a regular file");
    if (stat.size > MAX_TOKEN_FILE) throw new Error(`${stat.size} bytes; a token file holds one short line`);
    return tokenFromFile(readFileSync(file, "utf8"));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : reason(error);
    throw new UsageError(`${where}: ${why}`);
  }
}

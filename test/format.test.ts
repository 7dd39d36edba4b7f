// slpc --format end to end: real slps and slpc processes, real TLS and UDP on loopback. Varied
// messages go through the relay (RFC 3164, RFC 5424 with structured data, no PRI, bytes that
// are not UTF-8, embedded newlines) and come out of slpc's stdout as raw lines, as JSON that the
// real jq reads, and as pretty columns with and without colour, on a pipe and on a terminal.

import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { BUN, Child, type ServerHandle, sendUdp, sleep, testBed, until } from "./kit.ts";

setDefaultTimeout(30_000);

const bed = testBed();

const latin1 = (text: string) => Buffer.from(text, "latin1");
/** One of each kind, in the order they are sent; their severities: warning, err, none, err, debug, info. */
const MESSAGES = [
  latin1("<36>Jan  5 10:11:12 web sshd[8119]: Failed password for root from 192.0.2.1 port 22 ssh2"),
  Buffer.from('<155>1 2024-01-05T10:11:12.5+01:00 db.example.com postgres 42 ID47 [ex@32473 k="v \\"q\\"" n="2"] lost'),
  latin1("no header at all"),
  latin1("<11>Jan  5 10:11:12 web kernel: caf\xe9 \xff"),
  latin1("<15>Jan  5 10:11:12 web app: first\nsecond"),
  latin1("<30>Jan  5 10:11:13 web systemd[1]: Started Session 4 of user alice."),
];

/**
 * slpc following `s` with `args`, in UTC so pretty's times do not depend on this machine; on a
 * terminal of 100 columns when `terminal`. Resolves once the server has started its stream.
 */
async function slpc(s: ServerHandle, args: string[], env: Record<string, string> = {}, terminal = false) {
  const { cert, key } = bed.pki.cert("client");
  const command = [BUN, "slpc.ts", "--server", `localhost:${s.tlsPort}`, "--ca", bed.pki.ca, "--cert", cert];
  command.push("--key", key, "--retry-min", "0.2", "--retry-max", "1", ...args);
  const starts = () => s.stderr.match(/ starts at #/g)?.length ?? 0;
  const before = starts();
  const c = bed.track(new Child(terminal ? ["python3", "test/on_terminal.py", "100", ...command] : command, env));
  await until(
    () => `the stream to start:\n${s.stderr}\n${c.stderr}`,
    () => starts() > before,
  );
  return c;
}

/** Sends MESSAGES through `s` and waits for `lines` lines on `c`'s stdout. */
async function relay(s: ServerHandle, c: Child, lines: number): Promise<string> {
  await sendUdp(s.udpPort, MESSAGES);
  const count = () => c.stdout.toString().split("\n").length - 1;
  await until(
    () => `${lines} lines, got:\n${c.stdout}`,
    () => count() >= lines,
  );
  return c.stdout.toString();
}

describe("--format raw", () => {
  test("each message is one line of its own bytes, control bytes escaped, as --stdout on a pipe", async () => {
    const s = await bed.server();
    const c = await slpc(s, ["--format", "raw"]);
    const out = await relay(s, c, MESSAGES.length);
    expect(Buffer.from(c.stdout)).toEqual(
      Buffer.concat(
        MESSAGES.map((m) => Buffer.concat([latin1(m.toString("latin1").replace("\n", "\\n")), latin1("\n")])),
      ),
    );
    expect(out.split("\n")).toHaveLength(MESSAGES.length + 1);
  });
});

describe("--format json", () => {
  test("jq reads every line, with each field of each kind of message", async () => {
    const s = await bed.server();
    const c = await slpc(s, ["--format", "json"]);
    await relay(s, c, MESSAGES.length);
    const run = /following server (\S+) from #1/.exec(c.stderr)![1]!;
    const jq = Bun.spawnSync(
      [
        "jq",
        "-c",
        "[.server, .seq, .facility, .severity, .timestamp, .hostname, .app, .procid, .msgid, .structured_data," +
          " .message, .message_base64]",
      ],
      { stdin: c.stdout },
    );
    expect(jq.stderr.toString()).toBe("");
    expect(jq.exitCode).toBe(0);
    const rows = jq.stdout
      .toString()
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    const at = "Jan  5 10:11:12";
    expect(rows).toEqual([
      [
        run,
        1,
        "auth",
        "warning",
        at,
        "web",
        "sshd",
        "8119",
        null,
        null,
        "Failed password for root from 192.0.2.1 port 22 ssh2",
        null,
      ],
      [
        run,
        2,
        "local3",
        "err",
        "2024-01-05T10:11:12.5+01:00",
        "db.example.com",
        "postgres",
        "42",
        "ID47",
        { "ex@32473": { k: 'v "q"', n: "2" } },
        "lost",
        null,
      ],
      [run, 3, null, null, null, null, null, null, null, null, "no header at all", null],
      [run, 4, "user", "err", at, "web", "kernel", null, null, null, null, latin1("caf\xe9 \xff").toString("base64")],
      [run, 5, "user", "debug", at, "web", "app", null, null, null, "first\nsecond", null],
      [
        run,
        6,
        "daemon",
        "info",
        "Jan  5 10:11:13",
        "web",
        "systemd",
        "1",
        null,
        null,
        "Started Session 4 of user alice.",
        null,
      ],
    ]);
    // Every line has every field, `received` an ISO time, and exactly one of message and message_base64.
    const checks = Bun.spawnSync(
      [
        "jq",
        "-e",
        "-s",
        'all(.[]; (keys | length) == 13 and (.received | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$"))' +
          " and ((.message == null) != (.message_base64 == null)))",
      ],
      { stdin: c.stdout },
    );
    expect(checks.stdout.toString()).toBe("true\n");
  });
});

/**
 * The header variants of issue 23: datagrams shaped as the issue gives them (with one alike from
 * elsewhere that the filter must leave out), a filter on a field slp did not read before, and the
 * JSON fields of what passes, in order, as syslog-ng or rsyslog reads them (which one:
 * lib/syslog_message.test.ts).
 */
const DEVICES: { name: string; filter: string[]; sent: string[]; fields: Record<string, unknown>[] }[] = [
  {
    name: "a month's name in capitals",
    filter: ["--host", "fw1"],
    sent: [
      "<190>NOV 22 00:00:33 fw2 CMDLOGGER[7]: elsewhere",
      "<190>NOV 22 00:00:33 fw1 CMDLOGGER[165319912]: cmd_logger_sh -c uptime",
    ],
    fields: [
      {
        facility: "local7",
        severity: "info",
        timestamp: "NOV 22 00:00:33",
        hostname: "fw1",
        app: "CMDLOGGER",
        procid: "165319912",
        message: "cmd_logger_sh -c uptime",
      },
    ],
  },
  {
    name: "Cisco PIX/ASA's time, with a year and without, and a colon after it",
    filter: ["--program", "%ASA-4-106023"],
    sent: [
      "<166>Mar 7 2008 19:06:52: %ASA-6-302015: Built outbound UDP connection",
      "<167>Mar 7 2008 19:06:53: %ASA-4-106023: Deny udp src outside:192.0.2.1/53 dst inside:198.51.100.7/53",
      "<167>Mar  7 19:06:54: %ASA-4-106023: Deny tcp src outside:192.0.2.2/80",
    ],
    fields: [
      {
        facility: "local4",
        severity: "debug",
        timestamp: "Mar 7 2008 19:06:53",
        hostname: null,
        app: "%ASA-4-106023",
        procid: null,
        message: "Deny udp src outside:192.0.2.1/53 dst inside:198.51.100.7/53",
      },
      {
        timestamp: "Mar  7 19:06:54",
        hostname: null,
        app: "%ASA-4-106023",
        message: "Deny tcp src outside:192.0.2.2/80",
      },
    ],
  },
  {
    name: "a space after the PRI",
    filter: ["--program", "openvpn,tag"],
    sent: [
      "<15> dhcpd[12]: elsewhere",
      "<167> Mar  7 19:06:53 switch3 tag: text",
      "<15> openvpn[2499]: PTHREAD support initialized",
    ],
    fields: [
      { timestamp: "Mar  7 19:06:53", hostname: "switch3", app: "tag", procid: null, message: "text" },
      {
        facility: "user",
        severity: "debug",
        timestamp: null,
        hostname: null,
        app: "openvpn",
        procid: "2499",
        message: "PTHREAD support initialized",
      },
    ],
  },
  {
    name: "an RFC 5424 header before malformed structured data",
    filter: ["--program", "evntslog"],
    sent: [
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com othrslog - ID47 [exampleSDID@32473 iut="3"',
      "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 " +
        '[exampleSDID@32473 iut="3" eventSource= "Application"] text',
    ],
    fields: [
      {
        facility: "local4",
        severity: "notice",
        timestamp: "2003-10-11T22:14:15.003Z",
        hostname: "mymachine.example.com",
        app: "evntslog",
        procid: null,
        msgid: "ID47",
        structured_data: null,
        message: '[exampleSDID@32473 iut="3" eventSource= "Application"] text',
      },
    ],
  },
  {
    name: "Cisco IOS's sequence number and starred time",
    filter: ["--host", "mydevice.com"],
    sent: [
      "<0>90: *Oct 07 03:10:03: other.com %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: elsewhere",
      "<0>91: *Oct 07 03:10:04: mydevice.com %CRYPTO-4-RECVD_PKT_INV_SPI: decaps: rec'd IPSEC packet has invalid spi",
    ],
    fields: [
      {
        facility: "kern",
        severity: "emerg",
        timestamp: "Oct 07 03:10:04",
        hostname: "mydevice.com",
        app: "%CRYPTO-4-RECVD_PKT_INV_SPI",
        message: "decaps: rec'd IPSEC packet has invalid spi",
      },
    ],
  },
  {
    name: "a year after the time",
    filter: ["--host", "linksys"],
    sent: ["<190>Apr 15 21:28:12 2007 netgear app: elsewhere", "<190>Apr 15 21:28:13 2007 linksys app: msg"],
    fields: [{ timestamp: "Apr 15 21:28:13 2007", hostname: "linksys", app: "app", message: "msg" }],
  },
];

describe("--format json and a filter, on what devices send (issue 23)", () => {
  for (const { name, filter, sent, fields } of DEVICES) {
    test(`${name}: its fields as the daemons read them, and a filter on them passes only its messages`, async () => {
      const s = await bed.server();
      const c = await slpc(s, ["--format", "json", ...filter]);
      await sendUdp(s.udpPort, sent.map(latin1));
      const lines = () => c.stdout.toString().split("\n").slice(0, -1);
      await until(
        () => `${fields.length} lines, got:\n${c.stdout}\n${s.stderr}`,
        () => lines().length >= fields.length,
      );
      await sleep(300); // the left-out ones do not come later
      const jq = Bun.spawnSync(["jq", "-c", "."], { stdin: c.stdout });
      expect(jq.exitCode).toBe(0);
      const rows = jq.stdout
        .toString()
        .trimEnd()
        .split("\n")
        .map((line) => JSON.parse(line));
      expect(rows).toHaveLength(fields.length);
      expect(rows).toMatchObject(fields);
    });
  }
});

/** The pretty lines of MESSAGES in UTC on 80 columns (stdout is a pipe), the time of the one without PRI aside. */
const PRETTY = [
  "Jan  5 10:11:12 web          sshd[8119]       warning Failed password for root",
  "                                                      from 192.0.2.1 port 22",
  "                                                      ssh2",
  'Jan  5 09:11:12 db.example.… postgres[42]     err     lost [ex@32473 k="v',
  '                                                      \\"q\\"" n=2]',
  "TIME            localhost                             no header at all",
  "Jan  5 10:11:12 web          kernel           err     caf\\xe9 \\xff",
  "Jan  5 10:11:12 web          app              debug   first",
  "                                                      second",
  "Jan  5 10:11:13 web          systemd[1]       info    Started Session 4 of user",
  "                                                      alice.",
];
/** `TIME` in PRETTY: a message without a time shows when it was received. */
const withoutTime = (out: string) =>
  out.replace(/^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?= localhost)/m, "TIME".padEnd(15));
/** The time, host and program columns of the first two messages. */
const HEAD = ["Jan  5 10:11:12 web          sshd[8119]       ", "Jan  5 09:11:12 db.example.… postgres[42]     "];
const RED = "\x1b[31m";
const YELLOW = "\x1b[33m";
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";
// biome-ignore lint/suspicious/noControlCharactersInRegex: the escape codes are what it removes
const uncoloured = (text: string) => text.replaceAll(/\x1b\[\d+m/g, "");

describe("--format pretty", () => {
  test("--color never: aligned columns, wrapped under the message, no escape code, bytes as escapes", async () => {
    const s = await bed.server();
    const c = await slpc(s, ["--format", "pretty", "--color", "never"], { TZ: "UTC" });
    const out = await relay(s, c, PRETTY.length);
    expect(withoutTime(out)).toBe(`${PRETTY.join("\n")}\n`);
  });

  test("--color always: err in red, warning in yellow, debug dimmed, info and no PRI plain", async () => {
    const s = await bed.server();
    const c = await slpc(s, ["--format", "pretty", "--color", "always"], { TZ: "UTC" });
    const out = withoutTime(await relay(s, c, PRETTY.length)).split("\n");
    expect(out[0]).toBe(`${HEAD[0]}${YELLOW}warning${RESET} ${YELLOW}Failed password for root${RESET}`);
    expect(out[1]).toBe(`${" ".repeat(54)}${YELLOW}from 192.0.2.1 port 22${RESET}`);
    expect(out[3]).toBe(`${HEAD[1]}${RED}err    ${RESET} ${RED}lost${RESET}${RED}${DIM} [ex@32473 k="v${RESET}`);
    expect(out[6]).toBe(
      `Jan  5 10:11:12 web          kernel           ${RED}err    ${RESET} ${RED}caf\\xe9 \\xff${RESET}`,
    );
    expect(out[7]).toBe(`Jan  5 10:11:12 web          app              ${DIM}debug  ${RESET} ${DIM}first${RESET}`);
    expect(out[5]).toBe(PRETTY[5]!);
    expect(out[9]).toBe(PRETTY[9]!);
    // Without its escape codes, it is the --color never text.
    expect(uncoloured(out.join("\n"))).toBe(`${PRETTY.join("\n")}\n`);
  });
});

describe("--stdout and --color auto on a terminal", () => {
  test("--stdout on a terminal is pretty, coloured, as wide as the terminal", async () => {
    const s = await bed.server();
    const c = await slpc(s, ["--stdout"], { TZ: "UTC" }, true);
    const lines = (await relay(s, c, MESSAGES.length + 2)).split("\n").slice(0, -1);
    expect(lines[0]).toStartWith(
      `Jan  5 10:11:12 web          sshd[8119]       ${YELLOW}warning${RESET} ${YELLOW}Failed`,
    );
    const plain = lines.map((line) => uncoloured(line));
    // 100 columns, not the 80 of a pipe: the first message wraps after "port", not after "root".
    expect(plain[0]).toBe(
      "Jan  5 10:11:12 web          sshd[8119]       warning Failed password for root from 192.0.2.1 port",
    );
    expect(plain.every((line) => line.length <= 100)).toBe(true);
  });

  test("NO_COLOR turns colour off on a terminal; --color always turns it back on", async () => {
    const s = await bed.server();
    const plain = await slpc(s, ["--format", "pretty"], { TZ: "UTC", NO_COLOR: "1" }, true);
    const coloured = await slpc(s, ["--format", "pretty", "--color", "always"], { TZ: "UTC", NO_COLOR: "1" }, true);
    const lines = MESSAGES.length + 2; // on 100 columns, two messages take two lines
    await relay(s, plain, lines);
    await until("the coloured lines", () => coloured.stdout.toString().split("\n").length > lines);
    expect(plain.stdout.toString()).not.toContain("\x1b");
    expect(coloured.stdout.toString()).toContain(`${RED}err    ${RESET}`);
    expect(withoutTime(uncoloured(coloured.stdout.toString()))).toBe(withoutTime(plain.stdout.toString()));
  });

  test("--format json on a terminal stays JSON, without colour", async () => {
    const s = await bed.server();
    const c = await slpc(s, ["--format", "json", "--color", "always"], {}, true);
    const out = await relay(s, c, MESSAGES.length);
    const jq = Bun.spawnSync(["jq", "-r", ".severity"], { stdin: Buffer.from(out) });
    expect(jq.stdout.toString()).toBe("warning\nerr\nnull\nerr\ndebug\ninfo\n");
  });
});

describe("command line", () => {
  test.each([
    [["--format", "yaml"], 'slpc: --format "yaml": expected raw, json or pretty\n'],
    [["--color", "yes"], 'slpc: --color "yes": expected always, never or auto\n'],
  ])("%p exits 2 with one line naming the problem", async (args, expected) => {
    const c = new Child([BUN, "slpc.ts", "--server", "localhost", ...args]);
    expect(await c.exit()).toBe(2);
    expect(c.stderr).toBe(expected);
  });
});

describe("--format raw and terminal control", () => {
  // raw escapes C0 control bytes, but C1 controls encoded as UTF-8 (U+009B is CSI: xterm acts on
  // it in UTF-8 mode) and bidi overrides pass as they came; raw is what --format raw prints to a
  // terminal, too. pretty shows both as \u escapes.
  test("--format raw prints no C1 control or bidi override as it came", async () => {
    const server = await bed.server();
    const client = await bed.client(server, { args: ["--format", "raw"] });
    await sendUdp(server.udpPort, [Buffer.from("<13>app: a\u009b2Jb\u202ec\u2066d")]);
    await until("the line", () => client.stdout.includes("\n"));
    const line = client.stdout.toString("utf8");
    expect(line).not.toMatch(/[\u0080-\u009f\u202a-\u202e\u2066-\u2069]/);
  });
});

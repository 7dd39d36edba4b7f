// @ts-check
// The live view of slpc --web: the messages slpc receives, as they come, from /events (Server-Sent
// Events, one JSON object each, the schema of docs/output.md).
//
// Every field was written by whoever can log on a server, so it reaches the page as text alone
// (textContent, an option's value), never as HTML; the CSP forbids any script but this file and
// any HTML sink at all (Trusted Types). Characters that would hide or reorder text are shown as
// escapes, as --format pretty shows them on a terminal.
//
// At 10,000 messages a second the page stays responsive: an event only queues its text; once a
// frame, the newest rows are kept (at most MAX_ROWS) and only the rows on screen are drawn, into
// a fixed set of elements, parsing just those messages. Nothing grows with the rate.

/** Rows the page keeps: the newest, the older ones dropped. */
const MAX_ROWS = 5000;
/**
 * Characters of their JSON the rows kept hold at most: the newest rows within it are kept. Any
 * host that logs writes a message of 64 KiB, its JSON up to six times that, and 5,000 of them
 * would be gigabytes; 5,000 rows of a few hundred bytes are well within it.
 */
const MAX_ROW_CHARS = 16 * 1024 * 1024;
const ROW_HEIGHT = 20;
const FILTERS = ["q", "severity", "host", "program", "server"];
/** Typing in a filter waits this long for the next key before the view is asked again. */
const TYPING_MS = 300;
/** After the view refused or lost the stream for good (a 503: too many viewers), try again this much later. */
const RETRY_MS = 10_000;
/** Suggestions kept for each of the host, program and server filters. */
const MAX_SUGGESTIONS = 100;
const STORAGE_KEY = "slpc-live-view";
const SEVERITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/** The characters a message could hide or reorder text with: controls, C1, bidi marks, overrides and isolates. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds, to show them escaped
const ACTIVE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * @typedef {{ from: string, server: string, seq: number, received: string, facility: string | null,
 *   severity: string | null, timestamp: string | null, hostname: string | null, app: string | null,
 *   procid: string | null, msgid: string | null, structured_data: Record<string, Record<string, string>> | null,
 *   message?: string, message_base64?: string }} Message
 * @typedef {{ data: string, record?: Message, cells?: string[] }} MessageRow
 * @typedef {{ gap: string }} GapRow
 * @typedef {MessageRow | GapRow} Row
 */

/** @param {string} id */
const element = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const inputs = Object.fromEntries(
  FILTERS.map((name) => [name, /** @type {HTMLInputElement | HTMLSelectElement} */ (element(name))]),
);
const scroller = element("scroller");
const spacer = element("spacer");
const rowsBox = element("rows");
const pauseButton = element("pause");
const statusLine = element("status");
const detail = element("detail");
const fields = /** @type {HTMLTableSectionElement} */ (element("fields").querySelector("tbody"));

/** The rows shown: while following, the newest; while paused, as they were. */
/** @type {Row[]} */
let rows = [];
/** Rows that came and are not shown yet: until the next frame, or while paused until Resume. */
/** @type {Row[]} */
let waiting = [];
/** The characters of the rows in `waiting`, as rowSize counts them. */
let waitingChars = 0;
let paused = false;
let arrivedWhilePaused = 0;
/** The id of the last event received: where a new stream for the same filter resumes. */
let lastEventId = "";
/** @type {EventSource | undefined} */
let source;
/** @type {Row | undefined} */
let selected;
let frame = 0;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let typing;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let retry;
/** The elements rows are drawn into, and the row each shows now. */
/** @type {HTMLElement[]} */
const slots = [];
/** @type {(Row | undefined)[]} */
const drawn = [];
let firstDrawn = 0;
const suggestions = { hosts: new Set(), programs: new Set(), servers: new Set() };

// ---- Text as it is shown: escapes for what would act, a time as --format pretty shows it.

/** @param {number} code @param {number} digits */
const hex = (code, digits) => code.toString(16).padStart(digits, "0");

/**
 * Text with the characters that would hide or reorder it as escapes: `\x1b`, `\u202e`; LF as `\n`
 * in a row, or as a line break where `lines`.
 * @param {string} text @param {boolean} [lines]
 */
function shown(text, lines = false) {
  return text.replace(ACTIVE, (char) => {
    if (char === "\n") return lines ? "\n" : "\\n";
    if (char === "\r") return "\\r";
    const code = char.charCodeAt(0);
    return code < 0x80 ? `\\x${hex(code, 2)}` : `\\u${hex(code, 4)}`;
  });
}

/**
 * A message that is not UTF-8, from its base64: the UTF-8 in it as text, each other byte as `\xHH`.
 * @param {string} base64 @param {boolean} [lines]
 */
function bytesShown(base64, lines = false) {
  const bytes = atob(base64);
  let out = "";
  let run = "";
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes.charCodeAt(i);
    const length =
      lead < 0x80
        ? 1
        : lead >= 0xc2 && lead < 0xe0
          ? 2
          : lead >= 0xe0 && lead < 0xf0
            ? 3
            : lead >= 0xf0 && lead < 0xf5
              ? 4
              : 0;
    let code = length === 1 ? lead : lead & (0xff >> (length + 1));
    let ok = length > 0 && i + length <= bytes.length;
    for (let k = 1; ok && k < length; k++) {
      const next = bytes.charCodeAt(i + k);
      ok = (next & 0xc0) === 0x80;
      code = (code << 6) | (next & 0x3f);
    }
    ok &&= code >= [0, 0, 0x80, 0x800, 0x10000][length] && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff);
    if (ok) {
      run += String.fromCodePoint(code);
      i += length;
    } else {
      out += `${shown(run, lines)}\\x${hex(lead, 2)}`;
      run = "";
      i++;
    }
  }
  return out + shown(run, lines);
}

/** @param {Message} record @param {boolean} [lines] */
function messageText(record, lines = false) {
  if (record.message_base64 !== undefined) return bytesShown(record.message_base64, lines);
  return shown(record.message ?? "", lines);
}

/** `[id name=value name2="with space"]`, as --format pretty writes structured data. @param {Message} record */
function structuredText(record) {
  const sd = record.structured_data;
  if (!sd) return "";
  /** @param {string} value */
  const quote = (value) => (/^[^\s"\]=]+$/.test(value) ? value : JSON.stringify(value));
  const elements = Object.entries(sd).map(
    ([id, params]) =>
      `[${[id, ...Object.entries(params).map(([name, value]) => `${name}=${quote(value)}`)].join(" ")}]`,
  );
  return shown(elements.join(""));
}

const clock = new Intl.DateTimeFormat("en-US", {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

/**
 * `Mmm dd hh:mm:ss`: a time with an offset in this browser's zone; BSD's, and one without offset,
 * as the sender wrote it (only the sender knows its zone); none: when slpc received it.
 * @param {Message} record
 */
function timeText(record) {
  const stamp = record.timestamp ?? "";
  const bsd = /^(\w{3}) +(\d{1,2}) (?:\d{4} )?(\d\d:\d\d:\d\d)/.exec(stamp);
  if (bsd) return `${bsd[1]} ${bsd[2]?.padStart(2)} ${bsd[3]}`;
  const iso = /^\d+-(\d+)-(\d+)T(\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$/.exec(stamp);
  if (iso && iso[5] === undefined) return `${MONTHS[Number(iso[1]) - 1] ?? "?"} ${iso[2]?.padStart(2)} ${iso[3]}`;
  const time = new Date(iso ? stamp : record.received);
  if (Number.isNaN(time.getTime())) return "";
  const part = Object.fromEntries(clock.formatToParts(time).map(({ type, value }) => [type, value]));
  return `${part.month} ${part.day?.padStart(2)} ${part.hour}:${part.minute}:${part.second}`;
}

/** Red for err and worse, yellow for warning, dimmed for debug, as --format pretty. @param {string | null} severity */
function severityClass(severity) {
  const code = SEVERITIES.indexOf(severity ?? "");
  return code < 0 ? "" : code <= 3 ? "severe" : code === 4 ? "warning" : code === 7 ? "debug" : "";
}

// ---- Rows: parsed when first drawn, and only then.

/** @param {Row} row @returns {row is MessageRow} */
const isMessage = (row) => "data" in row;

/** @param {MessageRow} row */
function recordOf(row) {
  row.record ??= JSON.parse(row.data);
  return /** @type {Message} */ (row.record);
}

/** The texts of a row's cells: time, server, host, program[pid], severity, message, structured data. */
/** @param {MessageRow} row */
function cellsOf(row) {
  if (row.cells) return row.cells;
  const record = recordOf(row);
  const program = record.app === null ? "" : `${record.app}${record.procid === null ? "" : `[${record.procid}]`}`;
  // A row shows one line: the start of a long message is enough, and costs no more however long it is.
  const cut = {
    ...record,
    message: record.message?.slice(0, 2000),
    message_base64: record.message_base64?.slice(0, 2000),
  };
  row.cells = [
    timeText(record),
    shown(record.from),
    shown(record.hostname ?? ""),
    shown(program),
    record.severity ?? "",
    messageText(cut),
    structuredText(record),
  ];
  suggest("hosts", record.hostname);
  suggest("programs", record.app);
  suggest("servers", record.from);
  return row.cells;
}

/** @param {"hosts" | "programs" | "servers"} list @param {string | null} value */
function suggest(list, value) {
  const seen = suggestions[list];
  if (value === null || value === "" || seen.has(value) || seen.size >= MAX_SUGGESTIONS) return;
  seen.add(value);
  const option = document.createElement("option");
  option.value = value;
  element(list).append(option);
}

// ---- Drawing: once a frame, the rows on screen only.

function schedule() {
  if (frame === 0) frame = requestAnimationFrame(draw);
}

/** @param {Row} row */
const rowSize = (row) => (isMessage(row) ? row.data.length : row.gap.length);

/**
 * The newest rows of `list`: MAX_ROWS at most, and MAX_ROW_CHARS of text (but the newest row always).
 * @param {Row[]} list
 */
function newest(list) {
  let start = list.length;
  let chars = 0;
  while (start > 0 && list.length - start < MAX_ROWS) {
    chars += rowSize(/** @type {Row} */ (list[start - 1]));
    if (chars > MAX_ROW_CHARS && start < list.length) break;
    start--;
  }
  return start === 0 ? list : list.slice(start);
}

function draw() {
  frame = 0;
  if (!paused && waiting.length > 0) {
    rows = newest(rows.concat(waiting));
    waiting = [];
    waitingChars = 0;
  }
  spacer.style.height = `${rows.length * ROW_HEIGHT}px`;
  if (!paused) scroller.scrollTop = scroller.scrollHeight;
  const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_HEIGHT) - 2);
  const count = Math.ceil(scroller.clientHeight / ROW_HEIGHT) + 4;
  while (slots.length < count) slots.push(newSlot());
  rowsBox.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
  firstDrawn = first;
  for (let i = 0; i < slots.length; i++) fill(i, rows[first + i]);
  showStatus();
}

function newSlot() {
  const slot = document.createElement("div");
  slot.className = "row";
  slot.hidden = true;
  for (let i = 0; i < 6; i++) slot.append(document.createElement("span"));
  const message = /** @type {HTMLElement} */ (slot.lastElementChild);
  message.append(document.createElement("span"), document.createElement("span"));
  /** @type {HTMLElement} */ (message.lastElementChild).className = "sd";
  rowsBox.append(slot);
  drawn.push(undefined);
  return slot;
}

/** @param {number} index @param {Row | undefined} row */
function fill(index, row) {
  const slot = /** @type {HTMLElement} */ (slots[index]);
  slot.classList.toggle("selected", row !== undefined && row === selected);
  if (drawn[index] === row) return;
  drawn[index] = row;
  slot.hidden = row === undefined;
  if (row === undefined) return;
  const cells = /** @type {HTMLElement[]} */ ([...slot.children]);
  const [text, sd] = /** @type {HTMLElement[]} */ ([...(cells[5]?.children ?? [])]);
  if (!isMessage(row)) {
    slot.className = "row gap";
    for (let i = 0; i < 5; i++) /** @type {HTMLElement} */ (cells[i]).textContent = "";
    /** @type {HTMLElement} */ (text).textContent = row.gap;
    /** @type {HTMLElement} */ (sd).textContent = "";
    return;
  }
  const values = cellsOf(row);
  const severity = severityClass(recordOf(row).severity);
  slot.className = row === selected ? "row selected" : "row";
  for (let i = 0; i < 5; i++) /** @type {HTMLElement} */ (cells[i]).textContent = values[i] ?? "";
  /** @type {HTMLElement} */ (cells[4]).className = severity;
  /** @type {HTMLElement} */ (cells[5]).className = severity;
  /** @type {HTMLElement} */ (text).textContent = values[5] ?? "";
  /** @type {HTMLElement} */ (sd).textContent = values[6] ? ` ${values[6]}` : "";
}

function showStatus() {
  const count = rows.length.toLocaleString("en-US");
  if (paused) {
    const news = arrivedWhilePaused.toLocaleString("en-US");
    pauseButton.textContent = `Resume (${news} new)`;
    if (!statusLine.classList.contains("trouble")) statusLine.textContent = `paused · ${count} lines`;
  } else {
    pauseButton.textContent = "Pause";
    if (!statusLine.classList.contains("trouble")) statusLine.textContent = `following · ${count} lines`;
  }
  pauseButton.classList.toggle("paused", paused);
}

/** @param {string} text */
function trouble(text) {
  statusLine.textContent = text;
  statusLine.classList.toggle("trouble", text !== "");
  if (text === "") showStatus();
}

// ---- A line's fields.

/** @param {Row} row */
function showDetail(row) {
  if (!isMessage(row)) return;
  const record = recordOf(row);
  /** @type {HTMLTableRowElement[]} */
  const lines = [];
  /** @param {string} name @param {string | number | null} value @param {string} [className] */
  const line = (name, value, className = "") => {
    const tr = document.createElement("tr");
    tr.className = className;
    const th = document.createElement("th");
    th.textContent = name;
    const td = document.createElement("td");
    td.textContent = value === null ? "null" : typeof value === "number" ? String(value) : value;
    if (value === null) td.className = "null";
    tr.append(th, td);
    lines.push(tr);
  };
  for (const name of ["from", "server", "seq", "received", "facility", "severity", "timestamp", "hostname", "app"]) {
    const value = /** @type {Record<string, string | number | null>} */ (record)[name] ?? null;
    line(name, typeof value === "string" ? shown(value) : value);
  }
  line("procid", record.procid === null ? null : shown(record.procid));
  line("msgid", record.msgid === null ? null : shown(record.msgid));
  if (record.structured_data === null) line("structured_data", null);
  for (const [id, params] of Object.entries(record.structured_data ?? {})) {
    line("structured_data", shown(id), "sd-id");
    for (const [name, value] of Object.entries(params)) line(`  ${shown(name)}`, shown(value, true));
  }
  if (record.message_base64 === undefined) line("message", shown(record.message ?? "", true));
  else {
    line("message", bytesShown(record.message_base64, true));
    line("message_base64", record.message_base64);
  }
  fields.replaceChildren(...lines);
  detail.hidden = false;
}

function closeDetail() {
  detail.hidden = true;
  selected = undefined;
  schedule();
}

// ---- The stream: one EventSource for the filter in the address bar.

function filterQuery() {
  const query = new URLSearchParams();
  for (const name of FILTERS) {
    const value = /** @type {HTMLInputElement} */ (inputs[name]).value.trim();
    if (value !== "") query.set(name, value);
  }
  return query;
}

/** Follows the view; with `resume`, from after the last event this page had, so that none comes twice. */
function connect(resume = false) {
  source?.close();
  clearTimeout(retry);
  const query = filterQuery();
  if (resume && lastEventId !== "") query.set("lastEventId", lastEventId);
  const url = `/events?${query}`;
  const stream = new EventSource(url);
  source = stream;
  stream.onopen = () => trouble("");
  // An event holds what slpc sent in one write: a message a line.
  stream.onmessage = (event) => {
    lastEventId = event.lastEventId;
    for (const data of event.data.split("\n")) arrive({ data });
  };
  stream.addEventListener("skipped", (event) => {
    const { skipped } = JSON.parse(/** @type {MessageEvent} */ (event).data);
    const gap =
      skipped === null
        ? "— slpc restarted since this page's last line: what came in between is not here —"
        : `— ${Number(skipped).toLocaleString("en-US")} messages went by that this page was too slow for —`;
    arrive({ gap });
  });
  stream.onerror = () => {
    if (stream !== source) return;
    // While CONNECTING the browser reconnects by itself, with Last-Event-ID; CLOSED is for good.
    if (stream.readyState === EventSource.CONNECTING) return trouble("reconnecting…");
    void explain(url);
    retry = setTimeout(() => connect(true), RETRY_MS);
  };
}

/** Why the view refused the stream: its answer's text, read without keeping a stream open. @param {string} url */
async function explain(url) {
  const abort = new AbortController();
  try {
    const answer = await fetch(url, { signal: abort.signal, headers: { Accept: "text/plain" } });
    const text = answer.ok ? "the stream ended" : (await answer.text()).replace(/^slpc --web: /, "").trim();
    trouble(`${shown(text.slice(0, 300))}; trying again in ${RETRY_MS / 1000} s`);
  } catch {
    trouble(`slpc is not reachable; trying again in ${RETRY_MS / 1000} s`);
  } finally {
    abort.abort();
  }
}

/** @param {Row} row */
function arrive(row) {
  waiting.push(row);
  waitingChars += rowSize(row);
  // A hidden tab draws no frames: what waits is bounded all the same, in rows and in characters.
  if (waiting.length >= 2 * MAX_ROWS || waitingChars >= 2 * MAX_ROW_CHARS) {
    waiting = newest(waiting);
    waitingChars = waiting.reduce((sum, each) => sum + rowSize(each), 0);
  }
  if (paused) arrivedWhilePaused++;
  schedule();
}

/** A new filter: the address bar shows it (a bookmark keeps it), and the view is asked again from the start. */
function refilter() {
  const query = filterQuery();
  history.replaceState(null, "", query.size > 0 ? `?${query}` : "/");
  rows = [];
  waiting = [];
  waitingChars = 0;
  lastEventId = "";
  arrivedWhilePaused = 0;
  connect();
  schedule();
}

function pause() {
  paused = true;
  arrivedWhilePaused = 0;
  schedule();
}

function resume() {
  paused = false;
  arrivedWhilePaused = 0;
  schedule();
}

// ---- Wiring.

for (const name of FILTERS) {
  const input = /** @type {HTMLInputElement} */ (inputs[name]);
  input.value = new URLSearchParams(location.search).get(name) ?? "";
  input.addEventListener(input.tagName === "SELECT" ? "change" : "input", () => {
    clearTimeout(typing);
    typing = setTimeout(refilter, input.tagName === "SELECT" ? 0 : TYPING_MS);
  });
}
pauseButton.addEventListener("click", () => (paused ? resume() : pause()));
element("close").addEventListener("click", closeDetail);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeDetail();
});
rowsBox.addEventListener("click", (event) => {
  const slot = /** @type {HTMLElement} */ (event.target).closest(".row");
  const index = slots.indexOf(/** @type {HTMLElement} */ (slot));
  const row = rows[firstDrawn + index];
  if (index < 0 || row === undefined) return;
  selected = row;
  showDetail(row);
  for (let i = 0; i < slots.length; i++) slots[i]?.classList.toggle("selected", drawn[i] === selected);
});
// Scrolling up to read stops the tail from moving under the reader, as `less +F` does.
scroller.addEventListener("wheel", (event) => {
  if (event.deltaY < 0 && !paused) pause();
});
scroller.addEventListener("scroll", () => {
  const bottom = rows.length * ROW_HEIGHT - scroller.clientHeight - ROW_HEIGHT;
  if (!paused && scroller.scrollTop < bottom) pause();
  if (paused) schedule();
});
window.addEventListener("resize", schedule);

// A reload keeps the page's rows and resumes after its last event: nothing twice, nothing missing.
window.addEventListener("pagehide", () => {
  const kept = newest(rows.concat(waiting)).map((row) => (isMessage(row) ? row.data : { gap: row.gap }));
  for (const count of [kept.length, 1000, 0]) {
    try {
      const saved = { search: location.search, lastEventId, rows: kept.slice(kept.length - count) };
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(saved));
      return;
    } catch {
      // Over the storage quota: fewer rows.
    }
  }
});

function restore() {
  const text = sessionStorage.getItem(STORAGE_KEY);
  sessionStorage.removeItem(STORAGE_KEY);
  if (text === null) return false;
  try {
    const saved = JSON.parse(text);
    if (saved.search !== location.search || typeof saved.lastEventId !== "string") return false;
    rows = /** @type {(string | GapRow)[]} */ (saved.rows).map((row) =>
      typeof row === "string" ? { data: row } : row,
    );

    lastEventId = saved.lastEventId;
    return true;
  } catch {
    return false;
  }
}

connect(restore());
schedule();

// A module: its names stay its own, not the window's.
export {};

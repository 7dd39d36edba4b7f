// slps's numbers for operators: what SIGUSR1 prints as one JSON line and /metrics serves, made
// from the server's state as plain values.

import type { ClientStream } from "./client_stream.ts";
import { describeFilter, type Filter } from "./filter.ts";
import type { Metric } from "./metrics.ts";
import type { ResumeStore } from "./resume_buffer.ts";

/** One authorized client, as slps keeps it. */
export interface ClientState {
  name?: string;
  subject?: string;
  remote: string;
  stream: ClientStream;
  /** Messages it skipped before the stream's own count was last taken. */
  droppedTotal: number;
  filter?: Filter;
  /** The last message it said it delivered (`progress`). */
  delivered?: number;
}

/** The resume buffer on disk (--buffer-dir), as its numbers show it. */
export interface DiskNumbers {
  dir: string;
  /** --fsync. */
  fsync: string;
  /** Bytes of the segment files. */
  bytes: number;
  segments: number;
  fsyncs: number;
  /** Writes, syncs, opens and reads that failed. */
  errors: number;
  /** True while the disk fails and messages are kept in memory only. */
  memoryOnly: boolean;
}

/** One input's numbers (slps/inputs/): what it received and skipped, and what its kind counts besides. */
export interface InputNumbers {
  /** The input as --input writes it. */
  input: string;
  kind: "udp" | "tcp" | "relp" | "unix";
  received: number;
  receivedBytes: number;
  skipped: { empty: number; oversize: number };
  /** tcp and relp: connections open now, and those refused for --input-connections since start. */
  connections?: number;
  refusedConnections?: number;
  /** udp: what the kernel dropped at its socket, or null where it cannot be read. */
  kernelDropped?: number | null;
}

/** What slps keeps, as far as its numbers show it. */
export interface ServerState {
  server: string;
  /** Milliseconds since the epoch, at start and now. */
  startedAt: number;
  now: number;
  counters: { connections: number; refused: number };
  /** Each input's numbers: the totals of all of them are summed from these. */
  inputs: InputNumbers[];
  buffer: ResumeStore;
  /** --buffer. */
  bufferLimit: number;
  /** With --buffer-dir. */
  disk?: DiskNumbers;
  /** The connections in each phase of their life; those resuming or streaming are authorized clients. */
  connections: {
    handshaking: ReadonlySet<unknown>;
    resuming: ReadonlySet<{ data: ClientState }>;
    streaming: ReadonlySet<{ data: ClientState }>;
    closing: ReadonlySet<unknown>;
  };
}

/** The numbers SIGUSR1 prints, one JSON line (docs/operations.md shows one). */
export function serverSnapshot(state: ServerState) {
  const { buffer, connections, inputs } = state;
  const sum = (count: (input: InputNumbers) => number) => inputs.reduce((total, input) => total + count(input), 0);
  // The kernel's drops at every UDP input; unknown if one of them cannot tell.
  const drops = inputs.filter((input) => input.kind === "udp").map((input) => input.kernelDropped ?? null);
  return {
    program: "slps",
    server: state.server,
    uptime: Math.round((state.now - state.startedAt) / 1000),
    received: sum((input) => input.received),
    receivedBytes: sum((input) => input.receivedBytes),
    ...state.counters,
    skipped: { empty: sum((input) => input.skipped.empty), oversize: sum((input) => input.skipped.oversize) },
    kernelDropped: drops.includes(null) ? null : sum((input) => input.kernelDropped ?? 0),
    inputs: inputs.map((input) => ({ ...input, skipped: { ...input.skipped } })),
    buffer: {
      messages: buffer.next - buffer.first,
      bytes: buffer.bytes,
      limit: state.bufferLimit,
      first: buffer.first,
      next: buffer.next,
      disk: state.disk ?? null,
    },
    phases: {
      handshaking: connections.handshaking.size,
      resuming: connections.resuming.size,
      streaming: connections.streaming.size,
      closing: connections.closing.size,
    },
    clients: [...connections.resuming, ...connections.streaming].map(({ data: client }) => ({
      name: client.name,
      subject: client.subject,
      address: client.remote,
      sent: client.stream.sent,
      sentBytes: client.stream.sentBytes,
      dropped: client.droppedTotal + client.stream.dropped,
      filtered: client.stream.filtered,
      filter: client.filter ? describeFilter(client.filter) : null,
      behind: client.stream.cursor === undefined ? 0 : buffer.behind(client.stream.cursor),
      delivered: client.delivered ?? null,
    })),
  };
}

export type Snapshot = ReturnType<typeof serverSnapshot>;
type ClientNumbers = Snapshot["clients"][number];

/** The same numbers as Prometheus metrics, for prometheusText. */
export function serverMetrics(now: Snapshot): Metric[] {
  const one = (name: string, help: string, type: Metric["type"], value: number): Metric => ({
    name,
    help,
    type,
    samples: [{ labels: {}, value }],
  });
  const perClient = (
    name: string,
    help: string,
    type: Metric["type"],
    value: (client: ClientNumbers) => number,
    clients = now.clients,
  ): Metric => ({
    name,
    help,
    type,
    samples: clients.map((c) => ({ labels: { subject: c.subject ?? "", address: c.address }, value: value(c) })),
  });
  const perInput = (name: string, help: string, value: (input: InputNumbers) => number): Metric => ({
    name,
    help,
    type: "counter",
    samples: now.inputs.map((input) => ({ labels: { kind: input.kind, input: input.input }, value: value(input) })),
  });
  const kernelDropped = now.kernelDropped;
  return [
    one("slps_received_messages_total", "Messages received, by all inputs.", "counter", now.received),
    one("slps_received_bytes_total", "Bytes of messages received, by all inputs.", "counter", now.receivedBytes),
    perInput("slps_input_received_messages_total", "Messages received by one input.", (input) => input.received),
    perInput("slps_input_received_bytes_total", "Bytes of messages received by one input.", (i) => i.receivedBytes),
    perInput(
      "slps_input_skipped_messages_total",
      "Messages an input skipped: empty, or over 65,507 bytes.",
      (input) => input.skipped.empty + input.skipped.oversize,
    ),
    {
      name: "slps_input_connections",
      help: "Connections open now to a tcp or relp input.",
      type: "gauge",
      samples: now.inputs
        .filter((input) => input.connections !== undefined)
        .map((input) => ({ labels: { kind: input.kind, input: input.input }, value: input.connections! })),
    },
    one("slps_connections_total", "TLS connections accepted.", "counter", now.connections),
    {
      name: "slps_skipped_datagrams_total",
      help: "Messages not relayed, of all inputs: empty, or over 65,507 bytes (oversize).",
      type: "counter",
      samples: (["empty", "oversize"] as const).map((kind) => ({ labels: { reason: kind }, value: now.skipped[kind] })),
    },
    // Left out where /proc cannot tell: a zero would say that nothing was dropped.
    ...(kernelDropped === null
      ? []
      : [
          one(
            "slps_kernel_dropped_datagrams_total",
            "Datagrams the kernel dropped at the UDP socket: its receive buffer was full (--udp-buffer).",
            "counter",
            kernelDropped,
          ),
        ]),
    one(
      "slps_refused_connections_total",
      "Connections refused: certificate, issuer, limits or timeouts.",
      "counter",
      now.refused,
    ),
    one("slps_clients", "Authorized clients connected now.", "gauge", now.clients.length),
    {
      name: "slps_open_connections",
      help: "TLS connections open now, by phase: handshaking, resuming, streaming, closing.",
      type: "gauge",
      samples: Object.entries(now.phases).map(([phase, value]) => ({ labels: { phase }, value })),
    },
    one("slps_buffer_messages", "Messages held in the resume buffer.", "gauge", now.buffer.messages),
    one("slps_buffer_bytes", "Bytes held in the resume buffer.", "gauge", now.buffer.bytes),
    one("slps_buffer_limit_bytes", "The resume buffer's limit (--buffer).", "gauge", now.buffer.limit),
    ...diskMetrics(now.buffer.disk),
    perClient("slps_client_sent_messages_total", "Messages sent to a client.", "counter", (c) => c.sent),
    perClient("slps_client_sent_bytes_total", "Bytes of messages sent to a client.", "counter", (c) => c.sentBytes),
    perClient(
      "slps_client_dropped_messages_total",
      "Messages a client missed because it fell more than --queue behind.",
      "counter",
      (c) => c.dropped,
    ),
    perClient(
      "slps_client_filtered_messages_total",
      "Messages a client's filter left out: not sent, and not lost.",
      "counter",
      (c) => c.filtered,
    ),
    perClient("slps_client_behind_bytes", "Bytes waiting for a client.", "gauge", (c) => c.behind),
    perClient(
      "slps_client_delivered_sequence",
      "The last message a client said it delivered (progress).",
      "gauge",
      (c) => c.delivered!,
      now.clients.filter((c) => c.delivered !== null),
    ),
  ];
}

/** The disk's metrics, with --buffer-dir; none without, where zeros would say a disk that is not there is empty. */
function diskMetrics(disk: DiskNumbers | null): Metric[] {
  if (disk === null) return [];
  const one = (name: string, help: string, type: Metric["type"], value: number): Metric => ({
    name,
    help,
    type,
    samples: [{ labels: {}, value }],
  });
  return [
    one("slps_buffer_disk_bytes", "Bytes of the resume buffer's segment files (--buffer-dir).", "gauge", disk.bytes),
    one("slps_buffer_disk_segments", "Segment files of the resume buffer.", "gauge", disk.segments),
    one("slps_buffer_fsyncs_total", "Syncs of the resume buffer's segment files (--fsync).", "counter", disk.fsyncs),
    one(
      "slps_buffer_disk_errors_total",
      "Writes, syncs and reads in --buffer-dir that failed.",
      "counter",
      disk.errors,
    ),
    one(
      "slps_buffer_memory_only",
      "1 while --buffer-dir fails and the newest messages are kept in memory only.",
      "gauge",
      disk.memoryOnly ? 1 : 0,
    ),
  ];
}

import { describe, expect, test } from "bun:test";
import { ClientStream } from "./client_stream.ts";
import { parsePrograms } from "./filter.ts";
import { prometheusText } from "./metrics.ts";
import { ResumeBuffer } from "./resume_buffer.ts";
import { type ServerState, serverMetrics, serverSnapshot } from "./server_numbers.ts";

const udp = {
  input: "udp://127.0.0.1:514",
  kind: "udp" as const,
  received: 2,
  receivedBytes: 14,
  skipped: { empty: 1, oversize: 0 },
};
const relp = {
  input: "relp://127.0.0.1:2514",
  kind: "relp" as const,
  received: 1,
  receivedBytes: 6,
  skipped: { empty: 0, oversize: 0 },
};

/**
 * A server that received three messages, two over UDP and one over RELP, with one client that was
 * sent them all, one still resuming, and one connection in its handshake.
 */
function state(changes: Partial<ServerState> = {}): ServerState {
  const buffer = new ResumeBuffer(1 << 20);
  for (const text of ["<13>one", "<13>two", "<13>three"]) buffer.append(Buffer.from(text));
  const stream = new ClientStream(buffer, 1 << 20, 0);
  stream.start({ type: "start", seq: 1 });
  stream.flush((data) => data.length, 1);
  const streaming = {
    name: "192.0.2.7:5000 (home)",
    subject: "/O=Example/CN=home",
    remote: "192.0.2.7:5000",
    stream,
    droppedTotal: 5,
    filter: { programs: parsePrograms("sshd") },
    delivered: 2,
  };
  const resuming = { remote: "192.0.2.8:6000", stream: new ClientStream(buffer, 1 << 20, 0), droppedTotal: 0 };
  return {
    server: "5f2c9a7e01b4d3c8",
    startedAt: 1_000_000,
    now: 1_086_400,
    counters: { connections: 4, refused: 1 },
    inputs: [
      { ...udp, kernelDropped: 7 },
      { ...relp, connections: 1, refusedConnections: 2 },
    ],
    buffer,
    bufferLimit: 1 << 20,
    connections: {
      handshaking: new Set(["a connection"]),
      resuming: new Set([{ data: resuming }]),
      streaming: new Set([{ data: streaming }]),
      closing: new Set(),
    },
    ...changes,
  };
}

describe("server numbers", () => {
  test("the SIGUSR1 line: the inputs' counts, each and summed; the buffer, the phases, each client", () => {
    expect(serverSnapshot(state())).toEqual({
      program: "slps",
      server: "5f2c9a7e01b4d3c8",
      uptime: 86,
      received: 3,
      receivedBytes: 20,
      connections: 4,
      refused: 1,
      skipped: { empty: 1, oversize: 0 },
      kernelDropped: 7,
      inputs: [
        { ...udp, kernelDropped: 7 },
        { ...relp, connections: 1, refusedConnections: 2 },
      ],
      buffer: { messages: 3, bytes: 29, limit: 1 << 20, first: 1, next: 4, disk: null },
      phases: { handshaking: 1, resuming: 1, streaming: 1, closing: 0 },
      clients: [
        {
          name: undefined,
          subject: undefined,
          address: "192.0.2.8:6000",
          sent: 0,
          sentBytes: 0,
          dropped: 0,
          filtered: 0,
          filter: null,
          behind: 0,
          delivered: null,
        },
        {
          name: "192.0.2.7:5000 (home)",
          subject: "/O=Example/CN=home",
          address: "192.0.2.7:5000",
          sent: 3,
          sentBytes: 29,
          dropped: 5,
          filtered: 0,
          filter: "program sshd",
          behind: 0,
          delivered: 2,
        },
      ],
    });
  });

  test("the same numbers at /metrics, labelled by subject and address", () => {
    const text = prometheusText(serverMetrics(serverSnapshot(state())));
    expect(text).toContain("\nslps_received_messages_total 3\n");
    expect(text).toContain('\nslps_skipped_datagrams_total{reason="empty"} 1\n');
    expect(text).toContain("\nslps_kernel_dropped_datagrams_total 7\n");
    expect(text).toContain('\nslps_input_received_messages_total{kind="relp",input="relp://127.0.0.1:2514"} 1\n');
    expect(text).toContain('\nslps_input_received_messages_total{kind="udp",input="udp://127.0.0.1:514"} 2\n');
    expect(text).toContain('\nslps_input_connections{kind="relp",input="relp://127.0.0.1:2514"} 1\n');
    expect(text).not.toContain('slps_input_connections{kind="udp"');
    expect(text).toContain('\nslps_open_connections{phase="handshaking"} 1\n');
    expect(text).toContain(
      '\nslps_client_dropped_messages_total{subject="/O=Example/CN=home",address="192.0.2.7:5000"} 5\n',
    );
    expect(text).toContain('\nslps_client_sent_messages_total{subject="",address="192.0.2.8:6000"} 0\n');
    // Only a client that said how far it delivered has a delivered sequence.
    expect(text.match(/^slps_client_delivered_sequence\{.*$/gm)).toEqual([
      'slps_client_delivered_sequence{subject="/O=Example/CN=home",address="192.0.2.7:5000"} 2',
    ]);
  });

  test("where the kernel's drops cannot be read, SIGUSR1 says null and /metrics leaves the metric out", () => {
    const numbers = serverSnapshot(
      state({
        inputs: [
          { ...udp, kernelDropped: 7 },
          { ...udp, kernelDropped: null },
        ],
      }),
    );
    expect(numbers.kernelDropped).toBeNull();
    expect(prometheusText(serverMetrics(numbers))).not.toContain("slps_kernel_dropped_datagrams_total");
  });

  test("with --buffer-dir, SIGUSR1 shows buffer.disk and /metrics its numbers; without, neither", () => {
    const disk = {
      dir: "/var/lib/slps",
      fsync: "always",
      bytes: 4096,
      segments: 2,
      fsyncs: 9,
      errors: 1,
      memoryOnly: true,
    };
    const numbers = serverSnapshot(state({ disk }));
    expect(numbers.buffer.disk).toEqual(disk);
    const text = prometheusText(serverMetrics(numbers));
    for (const line of [
      "slps_buffer_disk_bytes 4096",
      "slps_buffer_disk_segments 2",
      "slps_buffer_fsyncs_total 9",
      "slps_buffer_disk_errors_total 1",
      "slps_buffer_memory_only 1",
    ]) {
      expect(text).toContain(`\n${line}\n`);
    }
    expect(prometheusText(serverMetrics(serverSnapshot(state())))).not.toContain("slps_buffer_disk");
  });

  test("without a UDP input nothing can be dropped at one: the kernel's count is 0", () => {
    expect(serverSnapshot(state({ inputs: [relp] })).kernelDropped).toBe(0);
  });
});

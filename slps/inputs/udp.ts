// --input udp://HOST:PORT, and --udp: one datagram is one message, as slps has always taken them.
// UDP cannot make the daemon wait: every datagram goes to the intake, which forgets the oldest
// message when it must. A datagram the kernel drops because the socket's buffer is full never
// reaches slps, but the kernel counts it: that count is asked once a second and said.

import { createSocket, type Socket } from "node:dgram";
import * as fs from "node:fs";
import { reason, socketDrops, UdpDropCounter } from "../../lib.ts";
import { Input, type InputNumbers, type InputOptions } from "./input.ts";

export class UdpInput extends Input {
  /** --udp-buffer: the socket's receive buffer asked for. */
  readonly #bufferBytes: number;
  #socket: Socket | undefined;
  #drops: UdpDropCounter | undefined;
  /** What the kernel granted of #bufferBytes. */
  #granted = 0;

  constructor(address: { kind: "udp"; host: string; port: number }, options: InputOptions & { bufferBytes: number }) {
    super(address, options);
    this.#bufferBytes = options.bufferBytes;
  }

  protected get unit(): string {
    return "datagrams";
  }

  async open(): Promise<void> {
    const { host, port } = this.address as { host: string; port: number };
    const ipv6 = host.includes(":");
    // node:dgram rather than Bun.udpSocket: only it sets SO_RCVBUF, and a syslog daemon forwards
    // bursts faster than any event loop drains a default 208 KiB buffer (measured: 936 of 10,000
    // messages from rsyslog lost with it, none with 8 MiB).
    const socket = createSocket({ type: ipv6 ? "udp6" : "udp4", recvBufferSize: this.#bufferBytes });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    this.#socket = socket;
    socket.on("message", (message) => this.take(message));
    socket.on("error", (error) => this.log(reason(error)));
    // The kernel reports twice what it grants, and caps the grant at net.core.rmem_max.
    this.#granted = socket.getRecvBufferSize() / 2;
    const asked = this.#bufferBytes;
    if (this.#granted < asked) {
      const raise = `raise net.core.rmem_max to ${asked} (sysctl -w net.core.rmem_max=${asked})`;
      this.log(`warning: the UDP receive buffer is ${this.#granted} bytes, not --udp-buffer ${asked}: ${raise}`);
    }
    this.#drops = new UdpDropCounter({ ...fs, socketDrops }, socket.address().port, ipv6, (line) => this.log(line));
  }

  close(): void {
    this.#socket?.close();
  }

  override housekeeping(now: number): void {
    const { dropped, total } = this.#drops?.takeNew() ?? { dropped: 0, total: 0 };
    if (dropped > 0) {
      const full = `its receive buffer of ${this.#granted} bytes was full`;
      const fix = "raise --udp-buffer, and net.core.rmem_max with it (sysctl -w net.core.rmem_max=BYTES)";
      this.log(`the kernel dropped ${dropped} datagrams at the UDP socket (${total} in all): ${full}; ${fix}`);
    }
    super.housekeeping(now);
  }

  override numbers(): InputNumbers {
    return { ...super.numbers(), kernelDropped: this.#drops?.total() ?? null };
  }
}

// --input tcp://HOST:PORT: syslog over TCP as rsyslog's omfwd and syslog-ng's syslog() and network()
// send it, octet-counted or LF-framed (lib/syslog_tcp_framing.ts). TCP has no receipt, so nothing
// is answered; while the intake has no room the connection is not read, and the daemon queues
// once the kernels' buffers are full. A message it sent before slps died is lost if it sat in those
// buffers: docs/behaviour.md says how much that was, measured.

import { SyslogTcpDeframer, type TcpFrame } from "../../lib.ts";
import { Handoff } from "./input.ts";
import { type Link, type Session, StreamInput } from "./stream.ts";

export class TcpInput extends StreamInput {
  protected get unit(): string {
    return "frames";
  }

  protected session(link: Link): Session {
    const deframer = new SyslogTcpDeframer();
    const frames = new Handoff<TcpFrame>(
      this.room,
      (frame) => ("message" in frame ? this.take(frame.message) : this.skipOversize()),
      () => true,
      () => link.reading(!frames.waiting),
    );
    let read = 0;
    return {
      read: (chunk) => {
        const whole = deframer.push(chunk);
        read += whole.length;
        frames.offer(whole);
        return deframer.error;
      },
      get owing() {
        return deframer.midFrame ? "the rest of a frame" : undefined;
      },
      get frames() {
        return read;
      },
      get holding() {
        return frames.waiting;
      },
      ended: () => {
        // What was read stays in line for the intake: over TCP the daemon counts it as sent.
        const last = deframer.end();
        if (typeof last === "string") this.note("lost a message", `${link.remote}: ${last}`);
        else if (last) frames.offer([last]);
      },
      drained: () => {},
      farewell: () => {},
    };
  }
}

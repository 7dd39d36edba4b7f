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
    let read = 0;
    let failed = false;
    const frames = new Handoff<TcpFrame>(
      this.room,
      (frame) => {
        read++;
        if ("message" in frame) this.take(frame.message);
        else this.skipOversize();
      },
      () => true,
      () => {
        // Frames are read as they are handed on: a frame in neither form may be found only once there is room.
        if (deframer.error === undefined) link.reading(!frames.waiting);
        else if (!failed) {
          failed = true;
          this.cut(link, deframer.error);
        }
      },
    );
    return {
      read: (chunk) => frames.offer(deframer.frames(chunk)),
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
        // What was read stays in line for the intake, over TCP the daemon counts it as sent; the end
        // of the stream is read after it.
        const note = (why: string) => this.note("lost a message", `${link.remote}: ${why}`);
        frames.offer(lastFrame(deframer, note));
      },
      drained: () => {},
      farewell: () => {},
    };
  }
}

/** The frame the end of the stream completes, if any, once what came before it is read. */
function* lastFrame(deframer: SyslogTcpDeframer, lost: (why: string) => void): Generator<TcpFrame> {
  const last = deframer.end();
  if (typeof last === "string") lost(last);
  else if (last) yield last;
}

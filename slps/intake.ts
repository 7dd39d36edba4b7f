// The seam between slps's inputs and its resume buffer: every input (udp, tcp, relp, unix) hands
// its messages here, and the acknowledged ones learn from it when to answer and when to wait.

/** Where every input (udp, tcp, relp, unix) hands its messages. */
export interface Intake {
  /**
   * Takes one message: returns its sequence number, or undefined when it was skipped (empty, or over
   * MAX_MESSAGE) and counted as today's `skipped` counters count it.
   */
  receive(message: Uint8Array): number | undefined;
  /**
   * Calls `done` once message `seq` is as safe as slps makes it: at once when the buffer is in memory;
   * with --buffer-dir, once written (and fsynced, if --fsync says so). RELP acknowledges from here.
   */
  whenStored(seq: number, done: () => void): void;
  /**
   * False while taking another message would make the buffer forget one that no client has been
   * sent yet: acknowledged inputs (tcp, relp, unix) then stop reading, which is the daemon's
   * backpressure. UDP cannot wait and goes on as today (the oldest are forgotten).
   */
  hasRoom(): boolean;
  /** Calls `callback` (once) when hasRoom() turns true again. */
  onRoom(callback: () => void): void;
}

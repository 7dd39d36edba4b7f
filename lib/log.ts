// Log lines and errors for people: `program: text` on stderr (the one process global in lib/,
// by design), and the text of an error without its stack.

/** `program: text` on stderr, one line per event. */
export function logger(program: string): (text: string) => void {
  return (text) => process.stderr.write(`${program}: ${text}\n`);
}

/** The text of an error from Bun or node, without a stack. */
export function reason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  return code && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
}

/** Failures of the network or of the peer's socket, as opposed to a refusal by TLS or a certificate check. */
const NETWORK_ERRORS = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "ENETDOWN",
  "EHOSTDOWN",
  "ENOTCONN",
]);

/** Whether `error` is a network failure (a reset, a timeout, an unreachable host) rather than a refusal. */
export function isNetworkError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null | undefined)?.code;
  return code !== undefined && NETWORK_ERRORS.has(code);
}

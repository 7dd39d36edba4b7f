// Loaded before every test file (bunfig.toml): the end-to-end tests start real processes and
// wait on real sockets, which can take longer than bun's default 5 s on a busy machine.
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(30_000);

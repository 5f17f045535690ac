// Starting and stopping kurrent-ingest processes (serve-store, broker, run) for the conformance tests.
// Loads no KurrentDB client: each test file picks its own (two clients in one process clash over
// google-protobuf's global namespace).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

// The binary under test: set by CMake (ctest) or by hand, e.g.
//   KI_BINARY=../../build/bin/kurrent-ingest node --test kurrentdb_client.test.mjs
export function binaryPath() {
  const path = process.env.KI_BINARY;
  if (!path) throw new Error("KI_BINARY is not set: it must name the kurrent-ingest binary");
  if (!existsSync(path)) throw new Error(`KI_BINARY=${path} does not exist (build the kurrent-ingest target first)`);
  return path;
}

export function makeTempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `ki-conformance-${prefix}-`));
}

export function removeTempDir(dir) {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

// A child process whose output is kept (the last 64 KiB) for failure messages. With
// `fileSizeLimitBytes`, it runs under that limit on the size of every file it writes (a full disk
// without privileges): `sh` sets it (POSIX `ulimit -f` counts 512-byte blocks) and ignores SIGXFSZ,
// which the exec keeps, so a write past the limit fails with EFBIG instead of killing the process.
class Child {
  constructor(name, args, { fileSizeLimitBytes } = {}) {
    this.name = name;
    this.args = args;
    this.output = "";
    this.exit = null; // { code, signal } once exited
    if (fileSizeLimitBytes === undefined) {
      this.proc = spawn(binaryPath(), args, { stdio: ["ignore", "pipe", "pipe"] });
    } else {
      const blocks = Math.floor(fileSizeLimitBytes / 512);
      if (!(blocks > 0)) throw new Error(`fileSizeLimitBytes must be at least 512 (got ${fileSizeLimitBytes})`);
      const script = `ulimit -f ${blocks} && trap '' XFSZ && exec "$0" "$@"`;
      this.proc = spawn("sh", ["-c", script, binaryPath(), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    }
    const keep = (chunk) => {
      this.output += chunk.toString("utf8");
      if (this.output.length > 65536) this.output = this.output.slice(-65536);
    };
    this.proc.stdout.on("data", keep);
    this.proc.stderr.on("data", keep);
    this.exited = new Promise((resolve) => {
      this.proc.on("exit", (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.proc.on("error", (err) => {
        this.output += `\nspawn failed: ${err.message}`;
        this.exit = { code: null, signal: null, error: err };
        resolve(this.exit);
      });
    });
  }

  describe() {
    return `${this.name} (kurrent-ingest ${this.args.join(" ")})`;
  }

  // Sends `signal` and waits up to `timeoutMs` for the exit; then SIGKILL. Returns the exit and
  // how long it took, or null when it had to be killed.
  async stop(signal = "SIGTERM", timeoutMs = 10000) {
    if (this.exit) return { ...this.exit, ms: 0 };
    const started = Date.now();
    this.proc.kill(signal);
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (result) return { ...result, ms: Date.now() - started };
    this.proc.kill("SIGKILL");
    await this.exited;
    return null;
  }
}

// Waits until `file` holds a line, or the process exits, or the timeout passes.
async function waitForAddressFile(child, file, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(file)) {
      const text = readFileSync(file, "utf8").trim();
      if (text) return text;
    }
    if (child.exit) {
      throw new Error(`${child.describe()} exited (${JSON.stringify(child.exit)}) before writing ${file}:\n${child.output}`);
    }
    if (Date.now() > deadline) {
      await child.stop("SIGKILL", 2000);
      throw new Error(`${child.describe()} did not write ${file} within ${timeoutMs} ms:\n${child.output}`);
    }
    await sleep(25);
  }
}

// `kurrent-ingest serve-store --listen 127.0.0.1:0 --mem-db --address-file F [--hide-batch-append]`,
// or `--db FILE` instead of `--mem-db` with `db`; `fileSizeLimitBytes` caps every file it writes.
// Returns { address, kurrentdb, esdb, stop(), output() }.
export async function startServeStore({ hideBatchAppend = false, dir, db, fileSizeLimitBytes } = {}) {
  const addressFile = join(dir, `serve-store-${hideBatchAppend ? "append" : "batch"}-${process.pid}-${Date.now()}.addr`);
  const args = ["serve-store", "--listen", "127.0.0.1:0", ...(db ? ["--db", db] : ["--mem-db"]), "--address-file", addressFile];
  if (hideBatchAppend) args.push("--hide-batch-append");
  const child = new Child("serve-store", args, { fileSizeLimitBytes });
  const address = await waitForAddressFile(child, addressFile, 15000);
  return {
    address,
    kurrentdb: `kurrentdb://${address}?tls=false`,
    esdb: `esdb://${address}?tls=false`,
    child,
    output: () => child.output,
    stop: () => child.stop("SIGTERM", 10000),
  };
}

// `kurrent-ingest broker --topics T --partitions N --bootstrap-file F`. Returns { bootstrap, stop() }.
export async function startBroker({ topics, partitions, dir }) {
  const bootstrapFile = join(dir, `broker-${process.pid}-${Date.now()}.addr`);
  const args = ["broker", "--topics", topics.join(","), "--partitions", String(partitions), "--bootstrap-file", bootstrapFile];
  const child = new Child("broker", args);
  const bootstrap = await waitForAddressFile(child, bootstrapFile, 15000);
  return { bootstrap, child, output: () => child.output, stop: () => child.stop("SIGTERM", 10000) };
}

// Any other subcommand, e.g. `run` or `generate`.
export function startCommand(args, name = args[0]) {
  return new Child(name, args);
}

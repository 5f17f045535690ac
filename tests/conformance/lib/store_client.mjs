// What the client test files share: a serve-store and a client for the enclosing describe block,
// unique stream names, reading a whole stream (again when the client reports it unavailable), and
// the rejections they expect. Loads no KurrentDB client itself: each test file passes its own (two
// clients in one process clash over google-protobuf's global namespace).
import { before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { startServeStore, makeTempDir, removeTempDir } from "./processes.mjs";

// Registers the enclosing describe block's hooks: before, a serve-store in a temp directory and
// `connect(server)`'s client; after, the client disposed and serve-store stopped, which must exit
// with 0 within 10 s of SIGTERM. Returns { dir, server, client }, filled in by the before hook.
export function withServeStore({ prefix, connect, hideBatchAppend = false }) {
  const served = { dir: undefined, server: undefined, client: undefined };
  before(async () => {
    served.dir = makeTempDir(prefix);
    served.server = await startServeStore({ hideBatchAppend, dir: served.dir });
    served.client = connect(served.server);
  });
  after(async () => {
    const { dir, server, client } = served;
    try {
      if (client) await client.dispose();
    } finally {
      if (server) {
        const exit = await server.stop();
        removeTempDir(dir);
        assert.ok(exit, `serve-store did not stop within 10 s of SIGTERM:\n${server.output()}`);
        assert.equal(exit.code, 0, `serve-store exit code after SIGTERM (signal ${exit.signal}):\n${server.output()}`);
      }
    }
  });
  return served;
}

// A stream name no other test uses.
export function stream(prefix) {
  return `${prefix}-${randomUUID()}`;
}

// Every event of `streamName` (readStream's options: direction, fromRevision, maxCount).
//
// A read the client reports as unavailable is read again from the start, up to three times in all.
// HTTP/2 lets a server reset a stream with NO_ERROR once its response is complete and the client
// has not yet half-closed (RFC 9113, section 8.1), and gRPC's server does so when a read finishes
// first. @kurrent/kurrentdb-client reads through its Rust bridge, which turns that reset into an
// UnavailableError, the error the client documents as transient, when it arrives before the bridge
// has taken the response's end. It happens on a busy machine, when the bridge's end of the request
// goes out later than the read's answer. Any other error, and a third unavailable read, fails.
export async function readAll(client, streamName, options = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      const out = [];
      for await (const resolved of client.readStream(streamName, options)) {
        assert.ok(resolved.event, `read of ${streamName}: every resolved event has an 'event' (got ${JSON.stringify(Object.keys(resolved))})`);
        out.push(resolved.event);
      }
      return out;
    } catch (error) {
      if (error?.type !== "unavailable" || attempt === 3) throw error;
      await sleep(50);
    }
  }
}

// The error `promise` rejects with; fails the test when it resolves.
export async function expectRejects(promise, what) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail(`${what}: expected an error, but the call succeeded`);
}

// Fails the test unless reading `streamName` rejects with the client's `StreamNotFoundError`.
export async function expectStreamMissing(client, streamName, what, StreamNotFoundError) {
  const error = await expectRejects(readAll(client, streamName), `${what}: reading ${streamName}`);
  assert.ok(
    error instanceof StreamNotFoundError,
    `${what}: ${streamName} must not exist, expected StreamNotFoundError, got ${error?.constructor?.name}: ${error?.message}`,
  );
}

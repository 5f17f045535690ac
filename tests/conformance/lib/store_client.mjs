// What the client test files share: a serve-store and a client for the enclosing describe block,
// unique stream names, reading a whole stream, and the rejections they expect. Loads no KurrentDB
// client itself: each test file passes its own (two clients in one process clash over
// google-protobuf's global namespace).
import { before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
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
export async function readAll(client, streamName, options = {}) {
  const out = [];
  for await (const resolved of client.readStream(streamName, options)) {
    assert.ok(resolved.event, `read of ${streamName}: every resolved event has an 'event' (got ${JSON.stringify(Object.keys(resolved))})`);
    out.push(resolved.event);
  }
  return out;
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

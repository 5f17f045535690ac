// serve-store's append errors as @kurrent/kurrentdb-client sees them: a full disk (every file the
// store writes capped by a file size limit) fails appendToStream (BatchAppend, or Append on a server
// without it), appendRecords and multiStreamAppend with the client's typed errors carrying the
// cause, while serve-store keeps serving what was written before; and BatchAppend's request errors
// (a first chunk without options, an empty stream name, too many bytes in unfinished appends)
// decode to typed errors with a message.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { statSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { startServeStore, makeTempDir, removeTempDir } from "./lib/processes.mjs";
import { stream, readAll, expectRejects, expectStreamMissing as expectStreamMissingAs } from "./lib/store_client.mjs";

const require = createRequire(import.meta.url);
const lib = require("@kurrent/kurrentdb-client");
const { KurrentDBClient, jsonEvent, ANY, NO_STREAM, UnknownError, UnavailableError, StreamNotFoundError } = lib;
// The client's own generated stubs and the function its BatchAppend uses to decode an in-body error:
// for the requests its API never sends.
const grpc = require("@grpc/grpc-js");
const { StreamsClient } = require("@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/streams_grpc_pb");
const streamsPb = require("@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/streams_pb");
const sharedPb = require("@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/shared_pb");
const { unpackToCommandError } = require("@kurrent/kurrentdb-client/dist/streams/appendToStream/unpackError");

// Every file serve-store writes (the database, its WAL) may grow to 1 MiB.
const FILE_SIZE_LIMIT = 1024 * 1024;
const PAD = "x".repeat(48 * 1024);

function event(tag, pad = PAD) {
  return jsonEvent({ id: randomUUID(), type: `${tag}Happened`, data: { tag, pad }, metadata: { origin: "full-disk" } });
}

async function readIds(client, streamName) {
  return (await readAll(client, streamName)).map((e) => e.id);
}

function describeError(error) {
  return `${error?.constructor?.name} (type ${error?.type}): ${JSON.stringify(error?.message)}`;
}

function expectStreamMissing(client, streamName, what) {
  return expectStreamMissingAs(client, streamName, what, StreamNotFoundError);
}

// Counts the v1 Streams rpcs the client opens, to tell BatchAppend from Append.
const rpcCounts = { append: 0, batchAppend: 0 };
for (const name of Object.keys(rpcCounts)) {
  const original = StreamsClient.prototype[name];
  StreamsClient.prototype[name] = function (...args) {
    rpcCounts[name] += 1;
    return original.apply(this, args);
  };
}

// A serve-store on `--db FILE` under the file size limit, and a client that filled its disk with
// 48 KiB appends through appendToStream, one at a time until one failed: far fewer than 200 fill
// 1 MiB (or 2 MiB, should the shell count the limit in KiB). `written` holds the ids each stream
// acknowledged, `fill` the append that failed.
async function startFullDisk(prefix, { hideBatchAppend = false } = {}) {
  const dir = makeTempDir(prefix);
  const db = join(dir, "store.db");
  const ctx = { dir, db, written: new Map(), fill: null };
  ctx.server = await startServeStore({ dir, db, hideBatchAppend, fileSizeLimitBytes: FILE_SIZE_LIMIT });
  ctx.client = KurrentDBClient.connectionString(ctx.server.kurrentdb);
  const streams = [stream("Fill"), stream("Fill"), stream("Fill")];
  for (const s of streams) ctx.written.set(s, []);
  for (let i = 0; i < 200 && !ctx.fill; i++) {
    const streamName = streams[i % streams.length];
    const e = event("Filled");
    try {
      await ctx.client.appendToStream(streamName, [e], { streamState: ANY });
      ctx.written.get(streamName).push(e.id);
    } catch (error) {
      ctx.fill = { streamName, id: e.id, error, appended: i };
    }
  }
  return ctx;
}

async function stopFullDisk(ctx) {
  if (!ctx) return;
  try {
    if (ctx.client) await ctx.client.dispose();
  } finally {
    if (ctx.server) {
      const exit = await ctx.server.stop();
      removeTempDir(ctx.dir);
      assert.ok(exit, `serve-store did not stop within 10 s of SIGTERM:\n${ctx.server.output()}`);
      assert.equal(exit.code, 0, `serve-store exit code after SIGTERM:\n${ctx.server.output()}`);
    }
  }
}

function checkFilled(ctx) {
  const { fill, db } = ctx;
  assert.ok(fill, `200 appends of 48 KiB all succeeded under a ${FILE_SIZE_LIMIT}-byte file size limit`);
  assert.ok(fill.appended >= 3, `at least one append per stream before the disk was full (got ${fill.appended})`);
  for (const suffix of ["", "-wal"]) {
    const size = statSync(db + suffix).size;
    assert.ok(size <= 2 * FILE_SIZE_LIMIT, `${db}${suffix} is ${size} bytes, over the limit: the limit was not applied`);
  }
}

async function checkServesWhatWasWritten(ctx) {
  const { server, client, written, fill } = ctx;
  assert.equal(server.child.exit, null, `serve-store exited on the full disk:\n${server.output()}`);
  for (const [streamName, ids] of written) {
    assert.deepEqual(await readIds(client, streamName), ids, `${streamName}: the acknowledged events, in order`);
  }
  assert.ok(!written.get(fill.streamName).includes(fill.id));
}

describe("@kurrent/kurrentdb-client against serve-store on a full disk", () => {
  let ctx;
  let client;
  let fill;

  before(async () => {
    const before = rpcCounts.batchAppend;
    ctx = await startFullDisk("full-disk");
    ({ client, fill } = ctx);
    assert.ok(rpcCounts.batchAppend > before, "appendToStream used BatchAppend");
  });

  after(() => stopFullDisk(ctx));

  it("fills the disk: some appends succeed, then one fails at the file size limit", () => checkFilled(ctx));

  it("appendToStream (BatchAppend) throws UnknownError with the stream and the cause, not a crash", async () => {
    const { error, streamName } = fill;
    assert.ok(error instanceof UnknownError, `expected UnknownError, got ${describeError(error)}`);
    assert.equal(error.type, "unknown", "error.type");
    assert.match(error.message, new RegExp(`batch append to ${streamName}: the store could not write it: `), describeError(error));
    assert.match(error.message, /errno \d+: (File too large|No space left on device)/, describeError(error));

    // The call is still usable, and the disk still full: a new stream is refused the same way.
    const fresh = stream("Fresh");
    const again = await expectRejects(
      client.appendToStream(fresh, [event("Fresh")], { streamState: NO_STREAM }),
      "appendToStream on the full disk",
    );
    assert.ok(again instanceof UnknownError, `expected UnknownError, got ${describeError(again)}`);
    assert.match(again.message, new RegExp(`batch append to ${fresh}: the store could not write it: `), describeError(again));
    await expectStreamMissing(client, fresh, "after the refused append");
  });

  it("appendRecords (AppendRecords) throws UnavailableError with the cause", async () => {
    const a = stream("Records");
    const b = stream("Records");
    const error = await expectRejects(
      client.appendRecords([
        { streamName: a, record: event("Records") },
        { streamName: b, record: event("Records") },
      ]),
      "appendRecords on the full disk",
    );
    assert.ok(error instanceof UnavailableError, `expected UnavailableError, got ${describeError(error)}`);
    assert.equal(error.type, "unavailable", "error.type");
    assert.equal(error.code, grpc.status.UNAVAILABLE, "error.code");
    assert.match(error.message, /append records: .*errno \d+: (File too large|No space left on device)/, describeError(error));
    await expectStreamMissing(client, a, "after the refused appendRecords");
    await expectStreamMissing(client, b, "after the refused appendRecords");
  });

  it("multiStreamAppend (AppendSession) throws UnavailableError with the cause", async () => {
    const a = stream("Session");
    const b = stream("Session");
    const error = await expectRejects(
      client.multiStreamAppend([
        { streamName: a, events: [event("Session")], expectedState: NO_STREAM },
        { streamName: b, events: [event("Session")], expectedState: ANY },
      ]),
      "multiStreamAppend on the full disk",
    );
    assert.ok(error instanceof UnavailableError, `expected UnavailableError, got ${describeError(error)}`);
    assert.equal(error.type, "unavailable", "error.type");
    assert.match(error.message, /errno \d+: (File too large|No space left on device)/, describeError(error));
    await expectStreamMissing(client, a, "after the refused multiStreamAppend");
    await expectStreamMissing(client, b, "after the refused multiStreamAppend");
  });

  it("keeps running and serves every acknowledged event, and none of the refused ones", () =>
    checkServesWhatWasWritten(ctx));
});

describe("@kurrent/kurrentdb-client against serve-store on a full disk, without BatchAppend", () => {
  let ctx;

  before(async () => {
    const before = { ...rpcCounts };
    ctx = await startFullDisk("full-disk-append", { hideBatchAppend: true });
    assert.ok(rpcCounts.append > before.append, "appendToStream used Append");
    assert.equal(rpcCounts.batchAppend, before.batchAppend, "appendToStream did not use BatchAppend");
  });

  after(() => stopFullDisk(ctx));

  it("fills the disk: some appends succeed, then one fails at the file size limit", () => checkFilled(ctx));

  it("appendToStream (Append) throws UnavailableError with the cause", () => {
    const { error } = ctx.fill;
    assert.ok(error instanceof UnavailableError, `expected UnavailableError, got ${describeError(error)}`);
    assert.equal(error.code, grpc.status.UNAVAILABLE, "error.code");
    assert.match(error.message, /errno \d+: (File too large|No space left on device)/, describeError(error));
  });

  it("keeps running and serves every acknowledged event, and none of the refused ones", () =>
    checkServesWhatWasWritten(ctx));
});

// One raw BatchAppend call over the client's generated stub; each response is decoded the way the
// client's appendToStream decodes it.
class RawBatchAppend {
  constructor(address) {
    this.client = new StreamsClient(address, grpc.credentials.createInsecure());
    this.call = this.client.batchAppend();
    this.waiting = new Map(); // correlation id -> resolve
    this.ended = new Promise((resolve) => {
      this.call.on("error", (error) => resolve(error));
      this.call.on("end", () => resolve(null));
    });
    this.call.on("data", (resp) => {
      const id = resp.getCorrelationId().getString();
      const resolve = this.waiting.get(id);
      if (resolve) {
        this.waiting.delete(id);
        resolve(resp);
      }
    });
  }

  // Resolves with the response for `correlationId`, or rejects when the call ends first.
  response(correlationId) {
    const answered = new Promise((resolve) => this.waiting.set(correlationId, resolve));
    return Promise.race([
      answered,
      this.ended.then((error) => {
        throw new Error(`BatchAppend call ended before answering ${correlationId}: ${error?.message ?? "no error"}`);
      }),
    ]);
  }

  // A chunk of `correlationId`: options (when `streamName` is given), `events`, is_final.
  write(correlationId, { streamName, events = [], isFinal }) {
    const req = new streamsPb.BatchAppendReq();
    const id = new sharedPb.UUID();
    id.setString(correlationId);
    req.setCorrelationId(id);
    if (streamName !== undefined) {
      const options = new streamsPb.BatchAppendReq.Options();
      const identifier = new sharedPb.StreamIdentifier();
      identifier.setStreamName(Buffer.from(streamName, "utf8"));
      options.setStreamIdentifier(identifier);
      options.setAny(new sharedPb.Empty());
      req.setOptions(options);
    }
    for (const data of events) {
      const message = new streamsPb.BatchAppendReq.ProposedMessage();
      const eventId = new sharedPb.UUID();
      eventId.setString(randomUUID());
      message.setId(eventId);
      message.getMetadataMap().set("type", "Raw");
      message.getMetadataMap().set("content-type", "application/octet-stream");
      message.setData(data);
      req.addProposedMessages(message);
    }
    req.setIsFinal(isFinal);
    return new Promise((resolve, reject) => {
      if (this.call.write(req)) resolve();
      else this.call.once("drain", resolve);
      this.ended.then((error) => reject(new Error(`BatchAppend call ended while writing: ${error?.message}`)));
    });
  }

  close() {
    this.call.end();
    this.client.close();
  }
}

function decoded(resp, streamName = "") {
  assert.ok(resp.hasError(), `expected an error response, got success`);
  return unpackToCommandError(resp.getError(), streamName);
}

describe("@kurrent/kurrentdb-client decodes serve-store's BatchAppend request errors", () => {
  let dir;
  let server;
  let client;

  before(async () => {
    dir = makeTempDir("batch-errors");
    server = await startServeStore({ dir });
    client = KurrentDBClient.connectionString(server.kurrentdb);
  });

  after(async () => {
    try {
      if (client) await client.dispose();
    } finally {
      if (server) {
        const exit = await server.stop();
        removeTempDir(dir);
        assert.ok(exit, `serve-store did not stop within 10 s of SIGTERM:\n${server.output()}`);
        assert.equal(exit.code, 0, `serve-store exit code after SIGTERM:\n${server.output()}`);
      }
    }
  });

  it("an empty stream name: appendToStream throws UnknownError naming the problem", async () => {
    const error = await expectRejects(client.appendToStream("", [event("Empty", "")], { streamState: ANY }), 'appendToStream("")');
    assert.ok(error instanceof UnknownError, `expected UnknownError, got ${describeError(error)}`);
    assert.match(error.message, /empty stream name/, describeError(error));
    // The client's BatchAppend call goes on.
    const ok = stream("AfterEmpty");
    await client.appendToStream(ok, [event("AfterEmpty", "")], { streamState: NO_STREAM });
    assert.equal((await readIds(client, ok)).length, 1);
  });

  it("a first chunk without options decodes to UnknownError naming the problem", async () => {
    const raw = new RawBatchAppend(server.address);
    try {
      const id = randomUUID();
      const answer = raw.response(id);
      await raw.write(id, { events: [Buffer.from("x")], isFinal: true });
      const error = decoded(await answer);
      assert.ok(error instanceof UnknownError, `expected UnknownError, got ${describeError(error)}`);
      assert.match(error.message, /first chunk of a correlation id must carry options/, describeError(error));
    } finally {
      raw.close();
    }
  });

  it("too many bytes in unfinished appends decodes to UnknownError naming the limits", async () => {
    // serve-store holds at most 64 MiB of unfinished chunks per call: 72 correlation ids of one
    // 960 KiB non-final chunk each (every one under the 1 MiB append size) pass it at the 69th.
    const raw = new RawBatchAppend(server.address);
    try {
      const chunk = Buffer.alloc(960 * 1024, 0x61);
      let refused = null;
      let onRefused;
      const firstRefusal = new Promise((resolve) => (onRefused = resolve));
      for (let i = 0; i < 72 && !refused; i++) {
        const id = randomUUID();
        raw.response(id).then(
          (resp) => {
            refused ??= { resp, i };
            onRefused();
          },
          () => {},
        );
        await raw.write(id, { streamName: `Pending-${i}`, events: [chunk], isFinal: false });
      }
      // The answer to the chunk that passed the budget may still be on its way.
      let timer;
      await Promise.race([firstRefusal, new Promise((resolve) => (timer = setTimeout(resolve, 20000)))]);
      clearTimeout(timer);
      assert.ok(refused, "no correlation id was refused within 20 s of 72 × 960 KiB unfinished chunks");
      assert.equal(refused.i, 68, "the refused chunk: the 69th is the first past 64 MiB");
      assert.equal(refused.resp.getError().getCode(), grpc.status.RESOURCE_EXHAUSTED, "the status code in the body");
      const error = decoded(refused.resp);
      assert.ok(error instanceof UnknownError, `expected UnknownError, got ${describeError(error)}`);
      assert.match(error.message, /too many bytes in unfinished correlation ids \(at most 67108864 per call/, describeError(error));
    } finally {
      raw.close();
    }
    // Ending the call gives the memory back: appends go on.
    const ok = stream("AfterPending");
    await client.appendToStream(ok, [event("AfterPending")], { streamState: NO_STREAM });
    assert.equal((await readIds(client, ok)).length, 1);
  });
});

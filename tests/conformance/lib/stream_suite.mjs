// The append and read conformance cases shared by both official clients. A test file loads ONE
// client and describes it with an adapter:
//   { label, lib, connect(server), appendOptions(state), wrongVersionFields: { expected, actual },
//     streamsGrpcModule }
// and calls defineStreamSuite(adapter). Each case runs twice: against a normal serve-store (the
// clients use BatchAppend) and against one started with --hide-batch-append (they use Append).
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { withServeStore, stream, readAll, expectRejects } from "./store_client.mjs";

const require = createRequire(import.meta.url);

// Counts the v1 Streams rpcs the client opens, by patching the generated gRPC client's prototype.
function spyOnStreamsRpcs(modulePath) {
  const proto = require(modulePath).StreamsClient.prototype;
  const counts = { append: 0, batchAppend: 0 };
  for (const name of Object.keys(counts)) {
    const original = proto[name];
    assert.equal(typeof original, "function", `${modulePath} StreamsClient has no ${name} method`);
    if (original.__kiSpy) {
      return original.__kiSpy;
    }
    const wrapped = function (...args) {
      counts[name] += 1;
      return original.apply(this, args);
    };
    wrapped.__kiSpy = counts;
    proto[name] = wrapped;
  }
  return counts;
}

// `count` distinct JSON events numbered from `first`, with nested data and metadata.
function makeEvents(lib, count, first = 0) {
  const events = [];
  for (let i = first; i < first + count; i++) {
    events.push(
      lib.jsonEvent({
        id: randomUUID(),
        type: `ConformanceEvent${i % 3}`,
        data: {
          n: i,
          name: `event ${i}`,
          nested: { list: [1, "two", { three: 3 }], flag: i % 2 === 0, nothing: null },
          text: "ünïcødé – 日本語 \"quoted\" \\ back",
        },
        metadata: { $correlationId: randomUUID(), origin: "conformance", n: i },
      }),
    );
  }
  return events;
}

export function defineStreamSuite(adapter) {
  const { lib, label } = adapter;
  const { ANY, NO_STREAM, STREAM_EXISTS, FORWARDS, BACKWARDS, END } = lib;
  const rpcCounts = spyOnStreamsRpcs(adapter.streamsGrpcModule);
  const suiteStarted = Date.now();

  // Checks one read-back event against what was appended at `revision`.
  function checkEvent(got, appended, streamName, revision, where) {
    const at = `${where}: ${streamName}@${revision}`;
    assert.equal(got.streamId, streamName, `${at}: streamId`);
    assert.equal(got.revision, BigInt(revision), `${at}: revision (bigint ${revision}n expected, got ${typeof got.revision} ${got.revision})`);
    assert.equal(got.id, appended.id, `${at}: event id`);
    assert.equal(got.type, appended.type, `${at}: event type`);
    assert.equal(got.isJson, true, `${at}: isJson (content-type application/json)`);
    assert.deepEqual(got.data, appended.data, `${at}: JSON data as appended`);
    assert.deepEqual(got.metadata, appended.metadata, `${at}: JSON metadata as appended`);
    assert.ok(got.created instanceof Date, `${at}: created is a Date (got ${got.created})`);
    const created = got.created.getTime();
    assert.ok(
      created >= suiteStarted - 5000 && created <= Date.now() + 5000,
      `${at}: created ${got.created.toISOString()} should be between ${new Date(suiteStarted - 5000).toISOString()} and now (100 ns ticks since the Unix epoch)`,
    );
  }

  function checkEvents(got, appended, streamName, revisions, where) {
    assert.deepEqual(
      got.map((e) => e.revision),
      revisions.map((r) => BigInt(r)),
      `${where}: revisions read from ${streamName}`,
    );
    got.forEach((e, i) => checkEvent(e, appended[revisions[i]], streamName, revisions[i], where));
  }

  function checkWrongExpectedVersion(error, { streamName, expected, actual }, what) {
    const { expected: expectedField, actual: actualField } = adapter.wrongVersionFields;
    assert.ok(
      error instanceof lib.WrongExpectedVersionError,
      `${what}: expected ${label}'s WrongExpectedVersionError, got ${error?.constructor?.name}: ${error?.message}`,
    );
    assert.equal(error.type, "wrong-expected-version", `${what}: error.type`);
    assert.equal(error.streamName, streamName, `${what}: error.streamName`);
    assert.equal(error[expectedField], expected, `${what}: error.${expectedField}`);
    assert.equal(error[actualField], actual, `${what}: error.${actualField}`);
  }

  for (const mode of [
    { name: "BatchAppend", hideBatchAppend: false, rpc: "batchAppend", otherRpc: "append" },
    { name: "Append (--hide-batch-append)", hideBatchAppend: true, rpc: "append", otherRpc: "batchAppend" },
  ]) {
    describe(`${label} against serve-store, appends through ${mode.name}`, () => {
      const served = withServeStore({ prefix: "streams", connect: adapter.connect, hideBatchAppend: mode.hideBatchAppend });
      let client;

      const append = (streamName, events, state) => client.appendToStream(streamName, events, adapter.appendOptions(state));

      before(() => {
        client = served.client;
      });

      it(`sends appends through ${mode.name}`, async () => {
        const before = { ...rpcCounts };
        const s = stream("rpc");
        await append(s, makeEvents(lib, 1), ANY);
        await append(s, makeEvents(lib, 1, 1), 0n);
        const used = rpcCounts[mode.rpc] - before[mode.rpc];
        const other = rpcCounts[mode.otherRpc] - before[mode.otherRpc];
        if (mode.rpc === "append") {
          assert.equal(used, 2, `Append calls opened for 2 appends (server without batchappend in ServerFeatures)`);
        } else {
          // One long-lived BatchAppend call carries every append of a fresh client.
          assert.equal(used, 1, `BatchAppend calls opened for the first 2 appends of a client`);
        }
        assert.equal(other, 0, `${mode.otherRpc} calls: the client must not use it here`);
      });

      it("NO_STREAM creates a stream; every field reads back", async () => {
        const s = stream("no-stream");
        const events = makeEvents(lib, 3);
        const result = await append(s, events, NO_STREAM);
        assert.equal(result.success, true, "append result.success");
        assert.equal(result.nextExpectedRevision, 2n, "nextExpectedRevision after 3 events on a new stream");
        assert.ok(result.position, "append result has a position");
        assert.equal(typeof result.position.commit, "bigint", "position.commit is a bigint");
        assert.equal(typeof result.position.prepare, "bigint", "position.prepare is a bigint");
        checkEvents(await readAll(client, s), events, s, [0, 1, 2], "read forwards");
      });

      it("an exact revision (bigint) appends after that revision", async () => {
        const s = stream("exact");
        const first = makeEvents(lib, 2);
        const second = makeEvents(lib, 2, 2);
        assert.equal((await append(s, first, NO_STREAM)).nextExpectedRevision, 1n, "after the first 2 events");
        const result = await append(s, second, 1n);
        assert.equal(result.nextExpectedRevision, 3n, "after appending 2 events at expected revision 1n");
        const second2 = makeEvents(lib, 1, 4);
        assert.equal((await append(s, second2, 3n)).nextExpectedRevision, 4n, "after 1 event at expected revision 3n");
        checkEvents(await readAll(client, s), [...first, ...second, ...second2], s, [0, 1, 2, 3, 4], "read forwards");
      });

      it("STREAM_EXISTS appends to an existing stream", async () => {
        const s = stream("exists");
        const first = makeEvents(lib, 1);
        const second = makeEvents(lib, 2, 1);
        await append(s, first, NO_STREAM);
        const result = await append(s, second, STREAM_EXISTS);
        assert.equal(result.nextExpectedRevision, 2n, "nextExpectedRevision after STREAM_EXISTS append");
        checkEvents(await readAll(client, s), [...first, ...second], s, [0, 1, 2], "read forwards");
      });

      it("ANY appends to a missing and to an existing stream", async () => {
        const s = stream("any");
        const first = makeEvents(lib, 2);
        const second = makeEvents(lib, 1, 2);
        assert.equal((await append(s, first, ANY)).nextExpectedRevision, 1n, "ANY on a missing stream");
        assert.equal((await append(s, second, ANY)).nextExpectedRevision, 2n, "ANY on an existing stream");
        checkEvents(await readAll(client, s), [...first, ...second], s, [0, 1, 2], "read forwards");
      });

      it("an identical re-append at the same expected revision succeeds and writes nothing", async () => {
        const s = stream("idempotent");
        const events = makeEvents(lib, 3);
        await append(s, events, NO_STREAM);
        const again = await append(s, events, NO_STREAM);
        assert.equal(again.nextExpectedRevision, 2n, "re-append of the same 3 ids with NO_STREAM reports the original revision");
        const more = makeEvents(lib, 1, 3);
        await append(s, more, 2n);
        const replay = await append(s, more, 2n);
        assert.equal(replay.nextExpectedRevision, 3n, "re-append of the same id at expected revision 2n reports revision 3n");
        checkEvents(await readAll(client, s), [...events, ...more], s, [0, 1, 2, 3], "read forwards after re-appends");
      });

      it("STREAM_EXISTS on a missing stream: WrongExpectedVersionError (stream_exists / no_stream)", async () => {
        const s = stream("exists-missing");
        const error = await expectRejects(append(s, makeEvents(lib, 1), STREAM_EXISTS), "STREAM_EXISTS on a missing stream");
        checkWrongExpectedVersion(error, { streamName: s, expected: STREAM_EXISTS, actual: NO_STREAM }, "STREAM_EXISTS on a missing stream");
        const readError = await expectRejects(readAll(client, s), "read after the failed append");
        assert.ok(readError instanceof lib.StreamNotFoundError, `the failed append created no stream (got ${readError?.constructor?.name})`);
      });

      it("NO_STREAM on an existing stream: WrongExpectedVersionError (no_stream / current revision)", async () => {
        const s = stream("no-stream-existing");
        const events = makeEvents(lib, 2);
        await append(s, events, NO_STREAM);
        const error = await expectRejects(append(s, makeEvents(lib, 1, 2), NO_STREAM), "NO_STREAM on a stream at revision 1");
        checkWrongExpectedVersion(error, { streamName: s, expected: NO_STREAM, actual: 1n }, "NO_STREAM on a stream at revision 1");
        checkEvents(await readAll(client, s), events, s, [0, 1], "stream unchanged after the failed append");
      });

      it("a wrong exact revision: WrongExpectedVersionError (expected / current revision)", async () => {
        const s = stream("exact-wrong");
        const events = makeEvents(lib, 3);
        await append(s, events, NO_STREAM);
        const ahead = await expectRejects(append(s, makeEvents(lib, 1, 3), 7n), "expected 7n on a stream at revision 2");
        checkWrongExpectedVersion(ahead, { streamName: s, expected: 7n, actual: 2n }, "expected 7n on a stream at revision 2");
        const behind = await expectRejects(append(s, makeEvents(lib, 1, 3), 0n), "expected 0n on a stream at revision 2");
        checkWrongExpectedVersion(behind, { streamName: s, expected: 0n, actual: 2n }, "expected 0n on a stream at revision 2");
        checkEvents(await readAll(client, s), events, s, [0, 1, 2], "stream unchanged after the failed appends");
      });

      it("an exact revision on a missing stream: WrongExpectedVersionError (revision / no_stream)", async () => {
        const s = stream("exact-missing");
        const error = await expectRejects(append(s, makeEvents(lib, 1), 0n), "expected 0n on a missing stream");
        checkWrongExpectedVersion(error, { streamName: s, expected: 0n, actual: NO_STREAM }, "expected 0n on a missing stream");
      });

      describe("readStream", () => {
        const s = stream("reads");
        let events;

        before(async () => {
          events = makeEvents(lib, 6);
          // Two appends, so the stream spans more than one write.
          await append(s, events.slice(0, 4), NO_STREAM);
          await append(s, events.slice(4), 3n);
        });

        it("forwards from the start", async () => {
          checkEvents(await readAll(client, s, { direction: FORWARDS }), events, s, [0, 1, 2, 3, 4, 5], "forwards");
        });

        it("backwards from the end", async () => {
          checkEvents(await readAll(client, s, { direction: BACKWARDS, fromRevision: END }), events, s, [5, 4, 3, 2, 1, 0], "backwards");
        });

        it("forwards fromRevision", async () => {
          checkEvents(await readAll(client, s, { direction: FORWARDS, fromRevision: 2n }), events, s, [2, 3, 4, 5], "forwards from 2n");
        });

        it("backwards fromRevision with maxCount", async () => {
          checkEvents(await readAll(client, s, { direction: BACKWARDS, fromRevision: 3n, maxCount: 2 }), events, s, [3, 2], "backwards from 3n, maxCount 2");
        });

        it("forwards with maxCount", async () => {
          checkEvents(await readAll(client, s, { maxCount: 2 }), events, s, [0, 1], "forwards, maxCount 2");
        });

        it("forwards fromRevision with maxCount", async () => {
          checkEvents(await readAll(client, s, { fromRevision: 1n, maxCount: 3 }), events, s, [1, 2, 3], "forwards from 1n, maxCount 3");
        });

        it("backwards from the end with maxCount 1 (the last event)", async () => {
          checkEvents(await readAll(client, s, { direction: BACKWARDS, fromRevision: END, maxCount: 1 }), events, s, [5], "backwards from END, maxCount 1");
        });

        it("forwards from past the end reads nothing", async () => {
          checkEvents(await readAll(client, s, { fromRevision: 6n }), events, s, [], "forwards from 6n");
        });

        it("a missing stream: StreamNotFoundError", async () => {
          const missing = stream("missing");
          const error = await expectRejects(readAll(client, missing), `reading missing stream ${missing}`);
          assert.ok(
            error instanceof lib.StreamNotFoundError,
            `reading a missing stream: expected ${label}'s StreamNotFoundError, got ${error?.constructor?.name}: ${error?.message}`,
          );
          assert.equal(error.type, "stream-not-found", "error.type");
          assert.equal(error.streamName, missing, "error.streamName");
        });
      });
    });
  }
}

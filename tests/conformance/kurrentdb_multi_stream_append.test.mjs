// serve-store's v2 AppendSession against @kurrent/kurrentdb-client's multiStreamAppend (the
// @eventstore/db-client 6.x has no multi-stream append): a session across several streams with
// every kind of expected state, read back through v1 reads, and conflicts that write nothing.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { withServeStore, stream, readAll, expectRejects, expectStreamMissing } from "./lib/store_client.mjs";

const require = createRequire(import.meta.url);
const lib = require("@kurrent/kurrentdb-client");
const { KurrentDBClient, jsonEvent, ANY, NO_STREAM, STREAM_EXISTS, WrongExpectedVersionError, StreamNotFoundError } = lib;

const started = Date.now();

// multiStreamAppend takes metadata with string values only.
function makeEvents(count, tag) {
  return Array.from({ length: count }, (_, i) =>
    jsonEvent({
      id: randomUUID(),
      type: `${tag}Happened${i}`,
      data: { tag, i, items: [i, `${i}`, { deep: [true, null] }], text: "ünïcødé – 日本語" },
      metadata: { $correlationId: randomUUID(), origin: "multi-stream", index: String(i) },
    }),
  );
}

// Events appended through AppendSession, read through v1: the properties become the JSON metadata,
// with "$schema.format" and "$schema.name" added as KurrentDB does.
function checkStream(got, appended, streamName, firstRevision, where) {
  assert.equal(got.length, appended.length, `${where}: events in ${streamName}`);
  got.forEach((e, i) => {
    const revision = BigInt(firstRevision + i);
    const at = `${where}: ${streamName}@${revision}`;
    const want = appended[i];
    assert.equal(e.streamId, streamName, `${at}: streamId`);
    assert.equal(e.revision, revision, `${at}: revision`);
    assert.equal(e.id, want.id, `${at}: id`);
    assert.equal(e.type, want.type, `${at}: type`);
    assert.equal(e.isJson, true, `${at}: isJson`);
    assert.deepEqual(e.data, want.data, `${at}: JSON data`);
    assert.deepEqual(
      e.metadata,
      { ...want.metadata, "$schema.format": "Json", "$schema.name": want.type },
      `${at}: metadata (the properties, plus "$schema.format" and "$schema.name")`,
    );
    assert.ok(e.created instanceof Date, `${at}: created is a Date`);
    assert.ok(
      e.created.getTime() >= started - 5000 && e.created.getTime() <= Date.now() + 5000,
      `${at}: created ${e.created.toISOString()} should be recent`,
    );
  });
}

describe("@kurrent/kurrentdb-client multiStreamAppend against serve-store (AppendSession)", () => {
  const served = withServeStore({
    prefix: "multi",
    connect: (server) => KurrentDBClient.connectionString(server.kurrentdb),
  });
  let client;
  before(() => {
    client = served.client;
  });

  it("writes every stream of a session (NO_STREAM, exact revision, STREAM_EXISTS, ANY)", async () => {
    const fresh = stream("Order");
    const exact = stream("Invoice");
    const exists = stream("Customer");
    const anyStream = stream("Audit");
    const seedExact = makeEvents(2, "seed");
    const seedExists = makeEvents(1, "seed");
    await client.appendToStream(exact, seedExact, { streamState: NO_STREAM });
    await client.appendToStream(exists, seedExists, { streamState: NO_STREAM });

    const requests = [
      { streamName: fresh, events: makeEvents(3, "Order"), expectedState: NO_STREAM },
      { streamName: exact, events: makeEvents(2, "Invoice"), expectedState: 1n },
      { streamName: exists, events: makeEvents(1, "Customer"), expectedState: STREAM_EXISTS },
      { streamName: anyStream, events: makeEvents(2, "Audit"), expectedState: ANY },
    ];
    const result = await client.multiStreamAppend(requests);
    assert.equal(typeof result.position, "bigint", "result.position is a bigint");
    assert.ok(result.position > 0n, `result.position > 0 (got ${result.position})`);
    assert.deepEqual(
      result.responses.map((r) => [r.streamName, r.revision]),
      [
        [fresh, 2n],
        [exact, 3n],
        [exists, 1n],
        [anyStream, 1n],
      ],
      "per-stream responses: the last revision written to each stream, in request order",
    );

    checkStream(await readAll(client, fresh), requests[0].events, fresh, 0, "session stream (NO_STREAM)");
    const exactEvents = await readAll(client, exact);
    assert.deepEqual(exactEvents.slice(0, 2).map((e) => e.id), seedExact.map((e) => e.id), `${exact}: the two earlier events stay first`);
    checkStream(exactEvents.slice(2), requests[1].events, exact, 2, "session stream (exact 1n)");
    checkStream((await readAll(client, exists)).slice(1), requests[2].events, exists, 1, "session stream (STREAM_EXISTS)");
    checkStream(await readAll(client, anyStream), requests[3].events, anyStream, 0, "session stream (ANY)");
  });

  it("a wrong exact revision on one stream: WrongExpectedVersionError and no stream of the session written", async () => {
    const first = stream("Order");
    const conflicting = stream("Invoice");
    const last = stream("Audit");
    const seed = makeEvents(2, "seed");
    await client.appendToStream(conflicting, seed, { streamState: NO_STREAM });

    const error = await expectRejects(
      client.multiStreamAppend([
        { streamName: first, events: makeEvents(2, "Order"), expectedState: NO_STREAM },
        { streamName: conflicting, events: makeEvents(1, "Invoice"), expectedState: 5n },
        { streamName: last, events: makeEvents(1, "Audit"), expectedState: ANY },
      ]),
      "multiStreamAppend with expected 5n on a stream at revision 1",
    );
    assert.ok(
      error instanceof WrongExpectedVersionError,
      `expected WrongExpectedVersionError, got ${error?.constructor?.name}: ${error?.message}`,
    );
    assert.equal(error.type, "wrong-expected-version", "error.type");
    assert.equal(error.streamName, conflicting, "error.streamName: the conflicting stream");
    assert.equal(error.expectedState, 5n, "error.expectedState");
    assert.equal(error.actualState, 1n, "error.actualState: the stream's current revision");

    await expectStreamMissing(client, first, "after the conflict (stream before the conflicting one)", StreamNotFoundError);
    await expectStreamMissing(client, last, "after the conflict (stream after the conflicting one)", StreamNotFoundError);
    const unchanged = await readAll(client, conflicting);
    assert.deepEqual(unchanged.map((e) => e.id), seed.map((e) => e.id), `${conflicting}: only its 2 earlier events`);
  });

  it("STREAM_EXISTS on a missing stream: WrongExpectedVersionError (stream_exists / no_stream), nothing written", async () => {
    const existing = stream("Customer");
    const missing = stream("Order");
    const seed = makeEvents(1, "seed");
    await client.appendToStream(existing, seed, { streamState: NO_STREAM });

    const error = await expectRejects(
      client.multiStreamAppend([
        { streamName: existing, events: makeEvents(1, "Customer"), expectedState: 0n },
        { streamName: missing, events: makeEvents(1, "Order"), expectedState: STREAM_EXISTS },
      ]),
      "multiStreamAppend with STREAM_EXISTS on a missing stream",
    );
    assert.ok(
      error instanceof WrongExpectedVersionError,
      `expected WrongExpectedVersionError, got ${error?.constructor?.name}: ${error?.message}`,
    );
    assert.equal(error.streamName, missing, "error.streamName");
    assert.equal(error.expectedState, STREAM_EXISTS, "error.expectedState");
    assert.equal(error.actualState, NO_STREAM, "error.actualState (a missing stream)");

    await expectStreamMissing(client, missing, "after the conflict", StreamNotFoundError);
    const unchanged = await readAll(client, existing);
    assert.deepEqual(unchanged.map((e) => e.id), seed.map((e) => e.id), `${existing}: the valid part of the session was not written`);
  });

  it("NO_STREAM on an existing stream: WrongExpectedVersionError (no_stream / current revision)", async () => {
    const existing = stream("Customer");
    const fresh = stream("Order");
    await client.appendToStream(existing, makeEvents(3, "seed"), { streamState: NO_STREAM });

    const error = await expectRejects(
      client.multiStreamAppend([
        { streamName: fresh, events: makeEvents(1, "Order"), expectedState: NO_STREAM },
        { streamName: existing, events: makeEvents(1, "Customer"), expectedState: NO_STREAM },
      ]),
      "multiStreamAppend with NO_STREAM on a stream at revision 2",
    );
    assert.ok(error instanceof WrongExpectedVersionError, `expected WrongExpectedVersionError, got ${error?.constructor?.name}: ${error?.message}`);
    assert.equal(error.streamName, existing, "error.streamName");
    assert.equal(error.expectedState, NO_STREAM, "error.expectedState");
    assert.equal(error.actualState, 2n, "error.actualState");
    await expectStreamMissing(client, fresh, "after the conflict", StreamNotFoundError);
  });
});

// serve-store's v2 AppendRecords against @kurrent/kurrentdb-client's appendRecords: records of several
// streams interleaved in one request, checks kept apart from the records (a check may name a stream
// the request does not write), every failing check reported at once, nothing written on a failure,
// and the request size limit.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { withServeStore, stream, readAll, expectRejects, expectStreamMissing } from "./lib/store_client.mjs";

const require = createRequire(import.meta.url);
const lib = require("@kurrent/kurrentdb-client");
const { KurrentDBClient, jsonEvent, NO_STREAM, STREAM_EXISTS, AppendConsistencyViolationError, StreamNotFoundError } =
  lib;
const STREAM_STATE = "stream_state";

// appendRecords takes metadata with string values only.
function record(streamName, tag, pad = "") {
  return {
    streamName,
    record: jsonEvent({
      id: randomUUID(),
      type: `${tag}Happened`,
      data: { tag, pad, text: "ünïcødé – 日本語" },
      metadata: { $correlationId: randomUUID(), origin: "append-records" },
    }),
  };
}

function check(streamName, expectedState) {
  return { type: STREAM_STATE, streamName, expectedState };
}

describe("@kurrent/kurrentdb-client appendRecords against serve-store (AppendRecords)", () => {
  const served = withServeStore({
    prefix: "records",
    connect: (server) => KurrentDBClient.connectionString(server.kurrentdb),
  });
  let client;
  before(() => {
    client = served.client;
  });

  it("writes interleaved records of several streams, in the request's order, with their checks", async () => {
    const order = stream("Order");
    const invoice = stream("Invoice");
    const audit = stream("Audit");
    const guard = stream("Guard");
    await client.appendToStream(invoice, [record(invoice, "seed").record], { streamState: NO_STREAM });
    await client.appendToStream(guard, [record(guard, "seed").record], { streamState: NO_STREAM });

    const records = [
      record(order, "Order"),
      record(invoice, "Invoice"),
      record(order, "Order"),
      record(audit, "Audit"),
      record(invoice, "Invoice"),
      record(order, "Order"),
    ];
    const result = await client.appendRecords(records, [
      check(order, NO_STREAM),
      check(invoice, 0n),
      check(guard, STREAM_EXISTS), // a stream the request does not write
    ]);
    assert.equal(typeof result.position, "bigint", "result.position is a bigint");
    assert.ok(result.position > 0n, `result.position > 0 (got ${result.position})`);
    assert.deepEqual(
      result.responses.map((r) => [r.streamName, r.revision]),
      [
        [order, 2n],
        [invoice, 2n],
        [audit, 0n],
      ],
      "one revision per stream written (its last), in the order of the streams' first records",
    );

    const orders = await readAll(client, order);
    assert.deepEqual(
      orders.map((e) => e.id),
      records.filter((r) => r.streamName === order).map((r) => r.record.id),
      `${order}: its records in request order`,
    );
    const first = orders[0];
    assert.equal(first.type, "OrderHappened");
    assert.deepEqual(first.data, records[0].record.data, "JSON data");
    assert.deepEqual(
      first.metadata,
      { ...records[0].record.metadata, "$schema.format": "Json", "$schema.name": "OrderHappened" },
      'metadata: the properties, plus "$schema.format" and "$schema.name"',
    );
    assert.equal((await readAll(client, invoice)).length, 3, `${invoice}: the seed and two records`);
    assert.equal((await readAll(client, guard)).length, 1, `${guard}: checked, not written`);
  });

  it("reports every failing check at once and writes nothing", async () => {
    const fresh = stream("Order");
    const stale = stream("Invoice");
    const existing = stream("Customer");
    const missing = stream("Ghost");
    await client.appendToStream(stale, [record(stale, "seed").record, record(stale, "seed").record], {
      streamState: NO_STREAM,
    });
    await client.appendToStream(existing, [record(existing, "seed").record], { streamState: NO_STREAM });

    const error = await expectRejects(
      client.appendRecords(
        [record(fresh, "Order"), record(stale, "Invoice"), record(existing, "Customer")],
        [check(fresh, NO_STREAM), check(stale, 5n), check(existing, NO_STREAM), check(missing, STREAM_EXISTS)],
      ),
      "appendRecords with three failing checks",
    );
    assert.ok(
      error instanceof AppendConsistencyViolationError,
      `expected AppendConsistencyViolationError, got ${error?.constructor?.name}: ${error?.message}`,
    );
    assert.equal(error.type, "append-consistency-violation", "error.type");
    assert.deepEqual(
      error.violations.map((v) => [v.checkIndex, v.streamName, v.expectedState, v.actualState]),
      [
        [1, stale, 5n, 1n],
        [2, existing, NO_STREAM, 0n],
        [3, missing, STREAM_EXISTS, NO_STREAM],
      ],
      "every failing check: its index, stream, expected and actual state",
    );
    await expectStreamMissing(client, fresh, "after the violation (its own check held)", StreamNotFoundError);
    assert.equal((await readAll(client, stale)).length, 2, `${stale}: only its 2 earlier events`);
    assert.equal((await readAll(client, existing)).length, 1, `${existing}: only its earlier event`);
  });

  it("a request over the append size limit is refused whole", async () => {
    const a = stream("Big");
    const b = stream("Big");
    const pad = "x".repeat(400 * 1024);
    const error = await expectRejects(
      client.appendRecords([record(a, "Big", pad), record(b, "Big", pad), record(a, "Big", pad)]),
      "appendRecords of 1.2 MiB (serve-store's limit is 1 MiB)",
    );
    assert.equal(error?.constructor?.name, "TransactionMaxSizeExceededError", `${error?.constructor?.name}: ${error?.message}`);
    assert.equal(error.maxSize, 1024 * 1024, "error.maxSize");
    assert.ok(error.size > 1024 * 1024, `error.size ${error.size} over the limit`);
    await expectStreamMissing(client, a, "after the refused request", StreamNotFoundError);
    await expectStreamMissing(client, b, "after the refused request", StreamNotFoundError);
  });
});

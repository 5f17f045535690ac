import { join } from "node:path";
// `kurrent-ingest run` end to end: NestJS-shaped JSON events produced with kafkajs to the embedded
// Kafka (`kurrent-ingest broker`), ingested by `run` into serve-store over KurrentDB's gRPC protocol,
// read back with the official @kurrent/kurrentdb-client: stream names, revisions, ids, types, data
// and metadata of every event; then SIGINT drains `run`, which exits 130 (interrupted) or 0.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { startBroker, startServeStore, startCommand, makeTempDir, removeTempDir } from "./lib/processes.mjs";
import { readAll } from "./lib/store_client.mjs";

const require = createRequire(import.meta.url);
const { KurrentDBClient, StreamNotFoundError } = require("@kurrent/kurrentdb-client");
const { Kafka, logLevel } = require("kafkajs");

const TOPIC = "system-events";
const PARTITIONS = 2;
const STREAMS = 20;
const VERSIONS = 10; // per stream: 200 events, the first half produced before `run` starts
const INGEST_TIMEOUT_MS = 60000;
const EXIT_TIMEOUT_MS = 30000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const started = Date.now();

// One aggregate (stream) of the seed domain, and the rules its envelopes exercise:
//   explicit: correlationId and causationId in every envelope (else derived by the pipeline)
//   plainId:  eventId is not a UUID (the event id is then a name-based v5 UUID; the original is
//             kept in the metadata as "eventId")
//   millis:   occurredOn is epoch milliseconds (rendered as ISO 8601 in the metadata)
function makeAggregates() {
  const run = randomUUID().slice(0, 8);
  return Array.from({ length: STREAMS }, (_, k) => ({
    k,
    aggregateType: "System",
    aggregateId: `sys-${run}-${k}`,
    stream: `System-sys-${run}-${k}`,
    partition: k % PARTITIONS,
    explicit: k % 2 === 0,
    plainId: k % 5 === 3,
    millis: k % 5 === 4,
    correlationId: randomUUID(),
    events: [], // { version, envelope, offset }
  }));
}

const EVENT_TYPES = ["SystemRegistered", "SystemRenamed", "SystemOwnerChanged", "SystemTagged"];

// The flat NestJS shape (`JSON.stringify(event)`): envelope fields, then the payload's fields.
function makeEnvelope(agg, version) {
  const previous = agg.events[agg.events.length - 1];
  const occurredMs = Date.UTC(2024, 0, 2, 3, 4, 5, 678) + agg.k * 1000 + version;
  const envelope = {
    eventId: agg.plainId ? `evt-${agg.aggregateId}-${version}` : randomUUID(),
    eventType: version === 1 ? "SystemRegistered" : EVENT_TYPES[1 + ((agg.k + version) % 3)],
    aggregateId: agg.aggregateId,
    aggregateType: agg.aggregateType,
    aggregateVersion: version,
  };
  if (agg.explicit) {
    envelope.correlationId = agg.correlationId;
    envelope.causationId = previous ? previous.envelope.eventId : agg.correlationId;
  }
  envelope.occurredOn = agg.millis ? occurredMs : new Date(occurredMs).toISOString();
  Object.assign(envelope, {
    systemName: `system-${agg.k}`,
    environment: agg.k % 3 === 0 ? "production" : "staging",
    owner: { team: "platform", oncall: ["ana", "bo"], level: version },
    tags: ["pci", `v${version}`],
    cvssScore: 7.5,
    note: "ünïcødé – 日本語",
  });
  return envelope;
}

// What the payload (the event's data) must be: every non-envelope field, in input order.
const ENVELOPE_FIELDS = new Set(["eventId", "eventType", "aggregateId", "aggregateType", "aggregateVersion", "correlationId", "causationId", "occurredOn"]);
function payloadOf(envelope) {
  return Object.fromEntries(Object.entries(envelope).filter(([key]) => !ENVELOPE_FIELDS.has(key)));
}

// Produces versions [from, to] of every aggregate, interleaved across streams, with explicit
// partitions so that each message's offset is known from the produce response.
async function produce(producer, aggregates, from, to) {
  const messages = [];
  const pending = []; // per message: { agg, entry }, in send order
  for (let version = from; version <= to; version++) {
    for (const agg of aggregates) {
      const envelope = makeEnvelope(agg, version);
      const entry = { version, envelope, offset: null };
      agg.events.push(entry);
      messages.push({ key: agg.aggregateId, value: JSON.stringify(envelope), partition: agg.partition });
      pending.push({ agg, entry });
    }
  }
  const results = await producer.send({ topic: TOPIC, messages });
  const base = new Map(results.map((r) => [r.partition, BigInt(r.baseOffset)]));
  const next = new Map();
  for (const { agg, entry } of pending) {
    assert.ok(base.has(agg.partition), `produce response has partition ${agg.partition}: ${JSON.stringify(results)}`);
    const offset = next.get(agg.partition) ?? base.get(agg.partition);
    entry.offset = Number(offset);
    next.set(agg.partition, offset + 1n);
  }
}

async function readStreamOrEmpty(client, stream) {
  try {
    return await readAll(client, stream);
  } catch (error) {
    if (error instanceof StreamNotFoundError) return [];
    throw error;
  }
}

// Polls until every aggregate's stream holds `count` events; fails early when `run` exits.
async function waitForStreams(client, aggregates, count, runProc, what) {
  const deadline = Date.now() + INGEST_TIMEOUT_MS;
  let counts = [];
  for (;;) {
    counts = [];
    for (const agg of aggregates) counts.push((await readStreamOrEmpty(client, agg.stream)).length);
    if (counts.every((c) => c >= count)) return;
    if (runProc.exit) {
      assert.fail(`${what}: ${runProc.describe()} exited early (${JSON.stringify(runProc.exit)}); events per stream ${JSON.stringify(counts)}, expected ${count} each. Its output:\n${runProc.output}`);
    }
    if (Date.now() > deadline) {
      assert.fail(`${what}: after ${INGEST_TIMEOUT_MS / 1000} s the streams hold ${JSON.stringify(counts)} events, expected ${count} each. ${runProc.describe()} output:\n${runProc.output}`);
    }
    await sleep(250);
  }
}

function isoOf(envelope) {
  return typeof envelope.occurredOn === "number" ? new Date(envelope.occurredOn).toISOString() : envelope.occurredOn;
}

// The run ids the events name (ingestRunId on the first event of each append): one run, one id.
const runIds = new Set();

function checkStream(agg, got) {
  const where = `stream ${agg.stream}`;
  assert.equal(got.length, agg.events.length, `${where}: events read back`);
  let previousId = null;
  got.forEach((e, i) => {
    const { version, envelope, offset } = agg.events[i];
    const at = `${where}@${i} (aggregateVersion ${version})`;
    assert.equal(e.streamId, agg.stream, `${at}: stream {AggregateType}-{AggregateId}`);
    assert.equal(e.revision, BigInt(version - 1), `${at}: revision = aggregateVersion - 1`);
    if (agg.plainId) {
      assert.match(e.id, UUID, `${at}: a non-UUID eventId becomes a UUID`);
      assert.equal(e.id[14], "5", `${at}: the derived id is a name-based (v5) UUID, got ${e.id}`);
    } else {
      assert.equal(e.id, envelope.eventId, `${at}: event id = the envelope's eventId`);
    }
    assert.equal(e.type, envelope.eventType, `${at}: event type = eventType`);
    assert.equal(e.isJson, true, `${at}: content type application/json`);
    assert.deepEqual(e.data, payloadOf(envelope), `${at}: data = the envelope's payload fields`);

    const correlation = agg.explicit ? envelope.correlationId : e.id;
    const causation = agg.explicit ? envelope.causationId : (previousId ?? correlation);
    const expected = {
      $correlationId: correlation,
      $causationId: causation,
      occurredAt: isoOf(envelope),
      ...(agg.plainId ? { eventId: envelope.eventId } : {}),
      aggregateVersion: version,
      source: { topic: TOPIC, partition: agg.partition, offset },
      // `run` appends through v2 AppendRecords (serve-store offers it): the metadata travels as the
      // record's properties, and v1 readers see the schema keys KurrentDB adds.
      "$schema.name": envelope.eventType,
      "$schema.format": "Json",
    };
    const { ingestRunId, ...metadata } = e.metadata;
    if (i === 0) assert.match(ingestRunId ?? "", UUID, `${at}: a stream's first event starts an append: it names the run`);
    if (ingestRunId !== undefined) runIds.add(ingestRunId);
    assert.deepEqual(metadata, expected, `${at}: metadata`);
    assert.ok(
      e.created instanceof Date && e.created.getTime() >= started - 5000 && e.created.getTime() <= Date.now() + 5000,
      `${at}: created ${e.created?.toISOString?.()} should be a recent Date`,
    );
    previousId = e.id;
  });
}

describe("kurrent-ingest run: Kafka (kafkajs producer) → serve-store, read back with @kurrent/kurrentdb-client", () => {
  let dir;
  let broker;
  let server;
  let runProc;
  let producer;
  let client;
  const aggregates = makeAggregates();

  before(async () => {
    dir = makeTempDir("ingest");
    broker = await startBroker({ topics: [TOPIC], partitions: PARTITIONS, dir });
    const kafka = new Kafka({ clientId: "conformance", brokers: [broker.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 3 } });
    producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    server = await startServeStore({ dir });
    client = KurrentDBClient.connectionString(server.kurrentdb);
  });

  after(async () => {
    if (producer) await producer.disconnect().catch(() => {});
    if (client) await client.dispose().catch(() => {});
    if (runProc && !runProc.exit) await runProc.stop("SIGKILL", 5000);
    if (server) await server.stop();
    if (broker) await broker.stop();
    removeTempDir(dir);
  });

  it("ingests every event with its id, type, data, metadata and revision; SIGINT drains and exits", async () => {
    const half = VERSIONS / 2;
    await produce(producer, aggregates, 1, half);

    runProc = startCommand([
      "run",
      "--brokers", broker.bootstrap,
      "--topics", TOPIC,
      "--group", "conformance",
      "--kurrent", server.kurrentdb,
      "--dlq-file", join(dir, "dead-letters.ndjson"),
    ]);
    await waitForStreams(client, aggregates, half, runProc, `the ${STREAMS * half} events produced before run started`);

    // `run` keeps consuming: the second half arrives while it runs.
    await produce(producer, aggregates, half + 1, VERSIONS);
    await waitForStreams(client, aggregates, VERSIONS, runProc, `all ${STREAMS * VERSIONS} events`);

    for (const agg of aggregates) checkStream(agg, await readStreamOrEmpty(client, agg.stream));
    assert.equal(runIds.size, 1, `one run wrote every append: ${[...runIds].join(", ")}`);

    const exit = await runProc.stop("SIGINT", EXIT_TIMEOUT_MS);
    assert.ok(exit, `run did not exit within ${EXIT_TIMEOUT_MS / 1000} s of SIGINT (killed). Its output:\n${runProc.output}`);
    assert.ok(
      exit.code === 130 || exit.code === 0,
      `run's exit code after SIGINT: expected 130 (interrupted) or 0, got ${JSON.stringify(exit)}. Its output:\n${runProc.output}`,
    );

    // Nothing was written twice or out of place while draining.
    for (const agg of aggregates) {
      const got = await readStreamOrEmpty(client, agg.stream);
      assert.equal(got.length, VERSIONS, `${agg.stream}: events after run exited`);
    }
  });
});

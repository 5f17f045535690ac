// `audit`, `read` and `streams` end to end: `generate` and kafkajs produce to the embedded Kafka
// (`broker`), `replay` ingests into serve-store (with two dead letters: an undecodable message and a
// revision conflict), then `audit` must account for every message (exit 0); a stray append by the
// official @kurrent/kurrentdb-client and a dead-letter file missing a line must each make `audit`
// exit 4 naming the stream and revision, whether it reads $all or each stream. `read` and `streams`
// output is checked against what was written.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startBroker, startServeStore, startCommand, makeTempDir, removeTempDir } from "./lib/processes.mjs";
import { readAll } from "./lib/store_client.mjs";

const require = createRequire(import.meta.url);
const { KurrentDBClient, jsonEvent } = require("@kurrent/kurrentdb-client");
const { Kafka, logLevel } = require("kafkajs");

const TOPIC = "audit-events";
const GENERATED = 2000;
const COMMAND_TIMEOUT_MS = 60000;

// Runs `kurrent-ingest ARGS` to its end; returns { code, output }.
async function run(args) {
  const child = startCommand(["--log-level", "warn", ...args], args[0]);
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), COMMAND_TIMEOUT_MS);
  });
  const exit = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);
  if (!exit) {
    await child.stop("SIGKILL", 2000);
    assert.fail(`${child.describe()} did not finish within ${COMMAND_TIMEOUT_MS} ms:\n${child.output}`);
  }
  return { code: exit.code, output: child.output };
}

const jsonLines = (text) => text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));

describe("kurrent-ingest audit, read and streams against serve-store", () => {
  let dir;
  let broker;
  let server;
  let client;
  const aggregateId = `x-${randomUUID().slice(0, 8)}`;
  const stream = `Audit-${aggregateId}`;
  const payloads = [{ step: 1, note: "first" }, { step: 2, nested: { a: [1, 2, 3] } }];
  let auditArgs;
  let dlqFile;

  before(async () => {
    dir = makeTempDir("audit");
    broker = await startBroker({ topics: [TOPIC], partitions: 2, dir });
    server = await startServeStore({ dir });
    client = KurrentDBClient.connectionString(server.kurrentdb);
    dlqFile = join(dir, "dlq.ndjson");

    const gen = await run(["generate", "--brokers", broker.bootstrap, "--events", String(GENERATED), "--topics", TOPIC, "--seed", "5"]);
    assert.equal(gen.code, 0, gen.output);
    // One aggregate of our own (two events, then a second version 2 that conflicts with the first),
    // and a message that is not JSON: two dead letters.
    const kafka = new Kafka({ clientId: "audit-test", brokers: [broker.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 3 } });
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const envelope = (version, payload) =>
      JSON.stringify({ eventId: randomUUID(), eventType: `AuditStep${version}`, aggregateId, aggregateType: "Audit", aggregateVersion: version, ...payload });
    await producer.send({
      topic: TOPIC,
      messages: [
        { key: aggregateId, value: envelope(1, payloads[0]), partition: 0 },
        { key: aggregateId, value: envelope(2, payloads[1]), partition: 0 },
        { key: aggregateId, value: envelope(2, { step: 2, conflicting: true }), partition: 0 },
        { key: "garbage", value: "this is not an envelope", partition: 1 },
      ],
    });
    await producer.disconnect();

    const replay = await run(["replay", "--brokers", broker.bootstrap, "--topics", TOPIC, "--group", "audit-test", "--kurrent", server.kurrentdb, "--dlq-file", dlqFile]);
    assert.equal(replay.code, 3, `replay ends with dead letters (exit 3):\n${replay.output}`);
    auditArgs = ["audit", "--brokers", broker.bootstrap, "--topics", TOPIC, "--kurrent", server.kurrentdb];
  });

  after(async () => {
    if (client) await client.dispose().catch(() => {});
    if (server) await server.stop();
    if (broker) await broker.stop();
    removeTempDir(dir);
  });

  it("accounts for every message after the replay (exit 0), with the JSON report", async () => {
    const reportFile = join(dir, "audit.json");
    const r = await run([...auditArgs, "--dlq-file", dlqFile, "--report", reportFile]);
    assert.equal(r.code, 0, r.output);
    const report = JSON.parse(readFileSync(reportFile, "utf8"));
    assert.equal(report.accounted, true);
    assert.equal(report.messages, GENERATED + 4);
    assert.equal(report.ok, GENERATED + 2);
    assert.equal(report.dead_lettered, 2);
    for (const k of ["missing", "extra", "misordered", "mismatched", "undecodable"]) assert.equal(report[k], 0, k);
    // The store holds just the replay: $all is read rather than each stream.
    assert.equal(report.store_read, "all");
    const byStream = join(dir, "audit-streams.json");
    const s = await run([...auditArgs, "--dlq-file", dlqFile, "--report", byStream, "--store-read", "streams"]);
    assert.equal(s.code, 0, s.output);
    const streamsReport = JSON.parse(readFileSync(byStream, "utf8"));
    assert.equal(streamsReport.store_read, "streams");
    for (const k of ["ok", "dead_lettered", "missing", "extra", "misordered", "mismatched", "undecodable"]) {
      assert.equal(streamsReport[k], report[k], k);
    }
  });

  it("read prints the events as written; streams lists the stream with its count", async () => {
    const r = await run(["read", stream, "--kurrent", server.kurrentdb, "--format", "ndjson"]);
    assert.equal(r.code, 0, r.output);
    const events = jsonLines(r.output);
    assert.deepEqual(events.map((e) => [e.stream, e.revision, e.type]), [[stream, 0, "AuditStep1"], [stream, 1, "AuditStep2"]]);
    assert.deepEqual(events.map((e) => e.data), payloads);
    assert.equal(events[0].metadata.aggregateVersion, 1);
    assert.match(events[0].created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    // The same events through the official client: ids agree.
    const official = await readAll(client, stream);
    assert.deepEqual(events.map((e) => e.id), official.map((e) => e.id));

    const back = await run(["read", stream, "--kurrent", server.kurrentdb, "--format", "ndjson", "--backwards", "--count", "1"]);
    assert.deepEqual(jsonLines(back.output).map((e) => e.revision), [1]);

    const s = await run(["streams", "--prefix", "Audit-", "--kurrent", server.kurrentdb, "--format", "ndjson"]);
    assert.equal(s.code, 0, s.output);
    assert.deepEqual(jsonLines(s.output).map((x) => [x.stream, x.events, x.last_revision]), [[stream, 2, 1]]);
    const all = await run(["streams", "--kurrent", server.kurrentdb, "--format", "ndjson"]);
    const listed = jsonLines(all.output);
    assert.equal(listed.reduce((n, x) => n + x.events, 0), GENERATED + 2);
  });

  it("exits 4 naming the stream and revision when a dead-letter line is missing", async () => {
    const lines = readFileSync(dlqFile, "utf8").split("\n").filter((l) => l.trim());
    assert.equal(lines.length, 2);
    const kept = lines.filter((l) => JSON.parse(l).reason !== "revision-conflict");
    const partial = join(dir, "dlq-partial.ndjson");
    writeFileSync(partial, kept.join("\n") + "\n");
    for (const how of ["auto", "streams", "all"]) {
      const r = await run([...auditArgs, "--dlq-file", partial, "--store-read", how]);
      assert.equal(r.code, 4, r.output);
      assert.match(r.output, new RegExp(`mismatched: stream ${stream} revision 1 \\(${TOPIC}\\[0\\]@\\d+\\)`));
      assert.match(r.output, /mismatched: 1,/);
    }
  });

  it("exits 4 naming the undecodable message when the dead-letter file is not given", async () => {
    const r = await run(auditArgs);
    assert.equal(r.code, 4, r.output);
    assert.match(r.output, new RegExp(`undecodable: \\(${TOPIC}\\[1\\]@\\d+\\)`));
  });

  it("exits 4 naming the stream and revision after a stray append by the official client", async () => {
    await client.appendToStream(stream, jsonEvent({ type: "StrayEvent", data: { stray: true } }));
    for (const how of ["auto", "streams", "all"]) {
      const r = await run([...auditArgs, "--dlq-file", dlqFile, "--store-read", how]);
      assert.equal(r.code, 4, r.output);
      assert.match(r.output, new RegExp(`extra: stream ${stream} revision 2: event [0-9a-f-]{36} is in the store`));
      assert.match(r.output, /extra: 1,/);
    }
    const read = await run(["read", stream, "--kurrent", server.kurrentdb, "--format", "ndjson", "--from", "2"]);
    assert.deepEqual(jsonLines(read.output).map((e) => [e.revision, e.type, e.data]), [[2, "StrayEvent", { stray: true }]]);
  });
});

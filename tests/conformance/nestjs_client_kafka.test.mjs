// The seed's NestJS publishers against kurrent-ingest, with the real @nestjs/microservices
// ClientKafka (over kafkajs) and @eventstore/db-client reading back, twice: against `run` (the
// embedded Kafka, serve-store and run as separate processes) and against `sandbox` (one process,
// reached with the seed's settings: brokers localhost:PORT, EVENTSTORE_CONNECTION_STRING).
//
// - send() to each seed topic resolves with {success: true, eventId}, the id readStream returns;
//   the data read back is the published object minus the envelope fields;
// - sending the same event again resolves with the same eventId and stores nothing new;
// - a malformed event ("[object Object]", a missing field) rejects with the dead-letter reason;
// - emit() of keyed events lands in order; emit() of unkeyed events (spread over partitions)
//   lands too, which relies on the engine holding an event until its stream's earlier versions
//   arrive from any partition.
import "reflect-metadata";
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { firstValueFrom } from "rxjs";
import { Logger } from "@nestjs/common";
import { ClientKafka } from "@nestjs/microservices";
import { EventStoreDBClient, FORWARDS, START } from "@eventstore/db-client";
import { startBroker, startServeStore, startCommand, makeTempDir, removeTempDir } from "./lib/processes.mjs";

// kafkajs' connection retries are NestJS error logs; the assertions say what went wrong.
Logger.overrideLogger(process.env.KI_NEST_LOGS ? ["error", "warn"] : false);

const TOPICS = {
  "system-events": "System",
  "vulnerability-events": "Vulnerability",
  "task-events": "Task",
  "relationship-events": "Relationship",
};
const ENVELOPE = ["eventId", "eventType", "aggregateId", "aggregateType", "aggregateVersion", "correlationId",
  "causationId", "occurredOn"];

// A DomainEvent as the seed's publisher serializes it (JSON.stringify of the class instance),
// with a payload field named `timestamp` next to the envelope's time.
function domainEvent(aggregateType, aggregateId, version, extra = {}) {
  return {
    eventId: randomUUID(),
    eventType: `${aggregateType}Registered`,
    aggregateId,
    aggregateType,
    aggregateVersion: version,
    correlationId: randomUUID(),
    occurredOn: new Date().toISOString(),
    name: `${aggregateType.toLowerCase()}-${aggregateId.slice(0, 8)}`,
    description: `version ${version}`,
    timestamp: 1700000000000 + version,
    ...extra,
  };
}

function payloadOf(event) {
  const data = { ...event };
  for (const k of ENVELOPE) delete data[k];
  return data;
}

async function readAll(store, stream) {
  const out = [];
  try {
    for await (const e of store.readStream(stream, { direction: FORWARDS, fromRevision: START })) out.push(e.event);
  } catch (err) {
    if (err?.type === "stream-not-found" || /not found/i.test(String(err?.message))) return [];
    throw err;
  }
  return out;
}

async function waitFor(what, check, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last.ok) return last;
    if (Date.now() > deadline) assert.fail(`${what}: not reached within ${timeoutMs} ms (${last.why ?? ""})`);
    await sleep(100);
  }
}

// ClientKafka.send() until the client's reply consumer has its partitions (right after connect()
// the group may still be forming), then the answer.
async function send(client, topic, message, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await firstValueFrom(client.send(topic, message));
    } catch (err) {
      const notReady = err?.constructor?.name === "InvalidKafkaClientTopicException";
      if (!notReady || Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function nestjsSuite(name, startStack) {
  describe(name, () => {
    let stack;
    let client;
    let store;

    before(async () => {
      stack = await startStack();
      client = new ClientKafka({
        client: { clientId: `conformance-${process.pid}`, brokers: [stack.brokers], logLevel: 1 },
        // The embedded Kafka answers a fetch when its wait ends, not when data arrives: a short
        // wait keeps the reply round trip short (a real broker answers as soon as data arrives).
        consumer: { groupId: `conformance-replies-${process.pid}-${Date.now()}`, sessionTimeout: 6000,
          heartbeatInterval: 500, maxWaitTimeInMs: 20 },
        producer: { allowAutoTopicCreation: false },
      });
      for (const t of Object.keys(TOPICS)) client.subscribeToResponseOf(t);
      await client.connect();
      store = EventStoreDBClient.connectionString(stack.connectionString);
    });

    after(async () => {
      await client?.close();
      await store?.dispose();
      await stack?.stop();
    });

    test("send() to each seed topic resolves with {success: true, eventId} as stored; a resend answers the same id and stores nothing", async () => {
      for (const [topic, type] of Object.entries(TOPICS)) {
        const event = domainEvent(type, randomUUID(), 1);
        const reply = await send(client, topic, { key: event.aggregateId, value: event });
        assert.deepEqual(reply, { success: true, eventId: event.eventId }, topic);
        const stream = `${type}-${event.aggregateId}`;
        const stored = await readAll(store, stream);
        assert.equal(stored.length, 1, stream);
        assert.equal(stored[0].id, reply.eventId);
        assert.equal(stored[0].type, event.eventType);
        assert.deepEqual(stored[0].data, payloadOf(event), "the published object minus the envelope fields");

        const again = await send(client, topic, { key: event.aggregateId, value: event });
        assert.deepEqual(again, reply, `${topic}: the retry answers with the same eventId`);
        assert.equal((await readAll(store, stream)).length, 1, `${stream}: nothing new stored`);
      }
    });

    test("a malformed event rejects with the reason", async () => {
      // What NestJS up to 11.1.5 sends for a class instance.
      await assert.rejects(send(client, "system-events", "[object Object]"), (err) => {
        assert.equal(err.status, "error");
        assert.match(err.message, /^decode-error: invalid JSON: got the text "\[object Object\]" \(15 bytes\)/);
        return true;
      });
      const { aggregateVersion, ...noVersion } = domainEvent("Task", randomUUID(), 1);
      assert.equal(aggregateVersion, 1);
      await assert.rejects(send(client, "task-events", { key: noVersion.aggregateId, value: noVersion }), (err) => {
        assert.match(err.message, /missing required field aggregateVersion/);
        return true;
      });
    });

    test("emit() of keyed events lands in order", async () => {
      const ids = [randomUUID(), randomUUID(), randomUUID()];
      const events = [];
      for (let v = 1; v <= 5; ++v) {
        for (const id of ids) events.push(domainEvent("Vulnerability", id, v, { severity: v }));
      }
      for (const e of events) await firstValueFrom(client.emit("vulnerability-events", { key: e.aggregateId, value: e }));
      for (const id of ids) {
        const stream = `Vulnerability-${id}`;
        const { stored } = await waitFor(stream, async () => {
          const stored = await readAll(store, stream);
          return { ok: stored.length === 5, stored, why: `${stored.length} of 5` };
        });
        const mine = events.filter((e) => e.aggregateId === id);
        assert.deepEqual(stored.map((e) => e.id), mine.map((e) => e.eventId));
        assert.deepEqual(stored.map((e) => e.data), mine.map(payloadOf));
      }
    });

    test("emit() of unkeyed events lands in order (the engine reassembles a stream across partitions)", async () => {
      const ids = [randomUUID(), randomUUID()];
      const events = [];
      for (let v = 1; v <= 6; ++v) {
        for (const id of ids) events.push(domainEvent("Relationship", id, v));
      }
      for (const e of events) await firstValueFrom(client.emit("relationship-events", e));
      for (const id of ids) {
        const stream = `Relationship-${id}`;
        const { stored } = await waitFor(stream, async () => {
          const stored = await readAll(store, stream);
          return { ok: stored.length === 6, stored, why: `${stored.length} of 6` };
        });
        assert.deepEqual(stored.map((e) => e.id), events.filter((e) => e.aggregateId === id).map((e) => e.eventId));
      }
    });

    test("reply latency of send() on loopback", async () => {
      const ms = [];
      for (let i = 0; i < 40; ++i) {
        const event = domainEvent("System", randomUUID(), 1);
        const t0 = process.hrtime.bigint();
        const reply = await send(client, "system-events", { key: event.aggregateId, value: event });
        ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        assert.equal(reply.eventId, event.eventId);
      }
      ms.sort((a, b) => a - b);
      console.log(`${name}: send() round trip over ${ms.length} requests: p50 ${quantile(ms, 0.5).toFixed(1)} ms, ` +
        `p99 ${quantile(ms, 0.99).toFixed(1)} ms`);
    });
  });
}

// Separate processes: broker, serve-store, run.
nestjsSuite("ClientKafka against run", async () => {
  const dir = makeTempDir("nestjs-run");
  const replyTopics = Object.keys(TOPICS).map((t) => `${t}.reply`);
  const broker = await startBroker({ topics: [...Object.keys(TOPICS), ...replyTopics], partitions: 3, dir });
  const server = await startServeStore({ dir });
  const report = join(dir, "run.json");
  const run = startCommand(["run", "--brokers", broker.bootstrap, "--topics", Object.keys(TOPICS).join(","),
    "--group", "conformance-nestjs", "--kurrent", server.esdb, "--dlq-file", join(dir, "dlq.ndjson"),
    "--report", report, "--batch-max-age-ms", "5"]);
  return {
    brokers: broker.bootstrap,
    connectionString: server.esdb,
    stop: async () => {
      const stopped = await run.stop("SIGINT", 30000);
      const text = existsSync(report) ? readFileSync(report, "utf8") : "";
      await server.stop();
      await broker.stop();
      assert.ok(stopped && (stopped.code === 130 || stopped.code === 0), `run did not stop cleanly:\n${run.output}`);
      const r = JSON.parse(text);
      assert.ok(r.replies_sent > 0, text);
      assert.equal(r.replies_failed, 0, text);
      console.log(`run report: ${r.replies_sent} replies, reply latency p50 ${r.reply_latency_p50_ms} ms, ` +
        `p99 ${r.reply_latency_p99_ms} ms`);
      removeTempDir(dir);
    },
  };
});

// One process, reached as the seed's app would: brokers localhost:PORT and the connection string
// from EVENTSTORE_CONNECTION_STRING.
nestjsSuite("ClientKafka against sandbox", async () => {
  const dir = makeTempDir("nestjs-sandbox");
  const ready = join(dir, "ready");
  const sandbox = startCommand(["sandbox", "--kafka-listen", "localhost:0", "--kurrent-listen", "127.0.0.1:0",
    "--data-dir", join(dir, "data"), "--ready-file", ready, "--batch-max-age-ms", "5"]);
  const lines = await waitFor("sandbox ready", async () => {
    if (sandbox.exit) assert.fail(`sandbox exited ${JSON.stringify(sandbox.exit)}:\n${sandbox.output}`);
    const text = existsSync(ready) ? readFileSync(ready, "utf8") : "";
    return { ok: text.split("\n").filter(Boolean).length === 2, text };
  }, 30000);
  const addr = Object.fromEntries(lines.text.trim().split("\n").map((l) => l.split(" ")));
  const kafkaPort = addr.kafka.split(":").pop();
  const kurrentPort = addr.kurrent.split(":").pop();
  process.env.EVENTSTORE_CONNECTION_STRING = `esdb://localhost:${kurrentPort}?tls=false`;
  return {
    brokers: `localhost:${kafkaPort}`,
    connectionString: process.env.EVENTSTORE_CONNECTION_STRING,
    stop: async () => {
      const stopped = await sandbox.stop("SIGINT", 30000);
      assert.ok(stopped && stopped.code === 130, `sandbox did not stop cleanly: ${JSON.stringify(stopped)}\n${sandbox.output}`);
      assert.ok(existsSync(join(dir, "data", "events.db")), "the store's file is kept");
      removeTempDir(dir);
    },
  };
});

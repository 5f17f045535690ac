#!/usr/bin/env node
// The per-message baseline: the NestJS `KurrentKafkaSubscriber` design that kurrent-ingest
// replaces, as a plain kafkajs consumer. Each Kafka message is handled on its own, like a NestJS
// @EventPattern handler: parse the JSON envelope, append that one event to the stream
// `{AggregateType}-{AggregateId}` with the expected revision taken from aggregateVersion, and
// commit the message's offset once the append succeeded. kafkajs' default
// partitionsConsumedConcurrently (1) keeps one message in flight at a time.
//
//   node subscriber.mjs --brokers HOST:PORT --topics t1,t2 --group G \
//     --kurrent 'kurrentdb://127.0.0.1:2113?tls=false' --events N [--result FILE] [--timeout-s S]
//
// Stops after N messages (appended or failed), disconnects and writes one JSON object to FILE
// (or as the last line of stdout):
//   {"events", "errors", "first_to_last_s", "events_per_s", "bytes", "cpu_s", "append_latency_ms": {"p50", "p99"}}
// (cpu_s: this process's user + system CPU from the first message to the last acknowledged append)
// Exit codes: 0 all appended, 1 some messages failed, 2 timeout, 3 bad arguments, 4 fatal error,
// 130 interrupted.
import { createRequire } from "node:module";
import { writeFileSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";

const require = createRequire(import.meta.url);
const { Kafka, logLevel } = require("kafkajs");
const {
  KurrentDBClient, jsonEvent, NO_STREAM, BACKWARDS, END, StreamNotFoundError, UnavailableError,
} = require("@kurrent/kurrentdb-client");

const USAGE = `usage: node subscriber.mjs --brokers HOST:PORT[,...] --topics T1[,T2...] --group GROUP
                          --kurrent CONNECTION_STRING --events N [--result FILE] [--timeout-s S]`;

function fail(code, message) {
  process.stderr.write(`nestjs-subscriber: ${message}\n`);
  process.exit(code);
}

function parseCli(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        brokers: { type: "string" },
        topics: { type: "string" },
        group: { type: "string" },
        kurrent: { type: "string" },
        events: { type: "string" },
        result: { type: "string" },
        "timeout-s": { type: "string", default: "600" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    fail(3, `${error.message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  for (const name of ["brokers", "topics", "group", "kurrent", "events"]) {
    if (!values[name]) fail(3, `--${name} is required\n${USAGE}`);
  }
  const events = Number(values.events);
  if (!Number.isSafeInteger(events) || events < 1) fail(3, `--events must be a positive integer, got ${values.events}`);
  const timeoutS = Number(values["timeout-s"]);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) fail(3, `--timeout-s must be a positive number, got ${values["timeout-s"]}`);
  const split = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);
  return {
    brokers: split(values.brokers),
    topics: split(values.topics),
    group: values.group,
    kurrent: values.kurrent,
    events,
    result: values.result,
    timeoutS,
  };
}

// ---- The envelope (the NestJS publisher's `JSON.stringify(event)`) -------------------------------

// Flat shape: envelope fields, then the payload's own fields at the top level.
// Nested shape: envelope fields plus "data": {...} (and optionally "metadata").
const ENVELOPE_FIELDS = new Set([
  "eventId", "eventType", "aggregateId", "aggregateType", "aggregateVersion",
  "correlationId", "causationId", "occurredOn", "occurredAt", "timestamp",
]);

function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

class EnvelopeError extends Error {}

function parseEnvelope(value) {
  if (value === null || value === undefined) throw new EnvelopeError("message has no value");
  let env;
  try {
    env = JSON.parse(value.toString("utf8"));
  } catch (error) {
    throw new EnvelopeError(`not JSON: ${error.message}`);
  }
  if (!isPlainObject(env)) throw new EnvelopeError("envelope is not a JSON object");
  const { eventId, eventType, aggregateType, aggregateVersion, correlationId, causationId } = env;
  let { aggregateId } = env;
  if (typeof eventType !== "string" || !eventType) throw new EnvelopeError("eventType missing");
  if (typeof aggregateType !== "string" || !aggregateType) throw new EnvelopeError("aggregateType missing");
  if (Number.isSafeInteger(aggregateId)) aggregateId = String(aggregateId);
  if (typeof aggregateId !== "string" || !aggregateId) throw new EnvelopeError("aggregateId missing");
  if (!Number.isSafeInteger(aggregateVersion) || aggregateVersion < 1) {
    throw new EnvelopeError(`aggregateVersion must be an integer >= 1, got ${JSON.stringify(aggregateVersion)}`);
  }
  const keys = Object.keys(env);
  const nested = isPlainObject(env.data) &&
    keys.every((k) => k === "data" || ENVELOPE_FIELDS.has(k) || (k === "metadata" && isPlainObject(env.metadata)));
  let payload;
  if (nested) {
    payload = env.data;
  } else {
    payload = {};
    for (const k of keys) if (!ENVELOPE_FIELDS.has(k)) payload[k] = env[k];
  }
  let occurredAt = env.occurredOn ?? env.occurredAt ?? env.timestamp;
  if (typeof occurredAt === "number") occurredAt = new Date(occurredAt).toISOString();
  return {
    eventId: typeof eventId === "string" && eventId ? eventId : undefined,
    eventType,
    aggregateType,
    aggregateId,
    aggregateVersion,
    correlationId: typeof correlationId === "string" && correlationId ? correlationId : undefined,
    causationId: typeof causationId === "string" && causationId ? causationId : undefined,
    occurredAt,
    payload,
  };
}

// ---- Measurements -------------------------------------------------------------------------------

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

// The client's errors often carry an empty message: name them by class, type and details.
function describeError(error) {
  if (!(error instanceof Error)) return String(error);
  const parts = [error.constructor?.name || error.name];
  if (error.type && error.type !== parts[0]) parts.push(`(${error.type})`);
  if (error.message && error.message !== parts[0] && error.message !== error.type) parts.push(error.message);
  if ("expectedState" in error || "actualState" in error) {
    parts.push(`expected ${String(error.expectedState)}, actual ${String(error.actualState)}`);
  }
  return parts.join(" ");
}

const round3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);

// ---- The subscriber ------------------------------------------------------------------------------

async function main() {
  const opts = parseCli(process.argv.slice(2));

  const kafka = new Kafka({
    clientId: "nestjs-subscriber",
    brokers: opts.brokers,
    logLevel: logLevel.WARN,
    retry: { retries: 5 },
  });
  const consumer = kafka.consumer({ groupId: opts.group, allowAutoTopicCreation: false });
  const client = KurrentDBClient.connectionString(opts.kurrent);

  let appended = 0;
  let failed = 0;
  let bytes = 0;
  let firstReceived = null; // hrtime bigint
  let lastAcked = null;
  let cpuAtFirst = null; // process.cpuUsage() when the first message arrived
  let cpuAtLast = null;
  const latenciesMs = [];
  // The previous event id per stream: the publisher's rule for an envelope without causationId
  // (causation = the aggregate's previous event, or the correlation id for its first event).
  const lastIdByStream = new Map();
  let printedErrors = 0;

  let done = false;
  let resolveDone;
  const finished = new Promise((resolve) => { resolveDone = resolve; });

  const reportError = (what) => {
    printedErrors++;
    if (printedErrors <= 50 || printedErrors % 1000 === 0) {
      process.stderr.write(`nestjs-subscriber: ${what}${printedErrors === 50 ? " (further errors: every 1000th)" : ""}\n`);
    }
  };

  const handled = () => {
    if (appended + failed >= opts.events && !done) {
      done = true;
      resolveDone();
    }
  };

  async function previousEventId(stream) {
    const known = lastIdByStream.get(stream);
    if (known) return known;
    // Not appended by this process (a restart): ask the store for the stream's last event.
    for (let attempt = 1; ; attempt++) {
      try {
        for await (const resolved of client.readStream(stream, { direction: BACKWARDS, fromRevision: END, maxCount: 1 })) {
          return resolved.event?.id;
        }
        return undefined;
      } catch (error) {
        if (error instanceof StreamNotFoundError) return undefined;
        if (!(error instanceof UnavailableError) || attempt >= 3) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }

  // The NestJS handler: one message, one append, then the offset commit.
  async function handleMessage({ topic, partition, message }) {
    if (done) return; // past N: leave the rest for the next run
    if (firstReceived === null) {
      firstReceived = process.hrtime.bigint();
      cpuAtFirst = process.cpuUsage();
    }
    bytes += message.value ? message.value.length : 0;
    const where = `${topic}/${partition}@${message.offset}`;

    let env;
    try {
      env = parseEnvelope(message.value);
    } catch (error) {
      failed++;
      reportError(`${where}: bad envelope: ${error.message}`);
      handled();
      return;
    }

    const stream = `${env.aggregateType}-${env.aggregateId}`;
    const version = env.aggregateVersion;
    try {
      const correlationId = env.correlationId ?? env.eventId;
      const causationId = env.causationId ??
        (version === 1 ? correlationId : (await previousEventId(stream)) ?? correlationId);
      const event = jsonEvent({
        id: env.eventId,
        type: env.eventType,
        data: env.payload,
        metadata: {
          $correlationId: correlationId ?? null,
          $causationId: causationId ?? null,
          occurredAt: env.occurredAt,
          topic,
          partition,
          offset: Number(message.offset),
        },
      });
      const t0 = process.hrtime.bigint();
      await client.appendToStream(stream, event, {
        streamState: version === 1 ? NO_STREAM : BigInt(version - 2),
      });
      const t1 = process.hrtime.bigint();
      latenciesMs.push(Number(t1 - t0) / 1e6);
      lastAcked = t1;
      cpuAtLast = process.cpuUsage(cpuAtFirst);
      lastIdByStream.set(stream, event.id);
      appended++;
    } catch (error) {
      failed++;
      reportError(`${where}: append to ${stream} (aggregateVersion ${version}) failed: ${describeError(error)}`);
      handled();
      return; // NACK: the offset is not committed
    }

    try {
      await consumer.commitOffsets([{ topic, partition, offset: String(BigInt(message.offset) + 1n) }]);
    } catch (error) {
      reportError(`${where}: offset commit failed: ${describeError(error)}`);
    }
    handled();
  }

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await consumer.disconnect().catch((error) => reportError(`kafka disconnect: ${error.message}`));
    await client.dispose().catch((error) => reportError(`kurrentdb dispose: ${error.message}`));
  };

  const progress = () => `${appended} appended, ${failed} failed of ${opts.events}`;
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      process.stderr.write(`nestjs-subscriber: ${signal} (${progress()})\n`);
      shutdown().finally(() => process.exit(130));
    });
  }

  const timer = setTimeout(() => {
    process.stderr.write(`nestjs-subscriber: timeout after ${opts.timeoutS} s (${progress()})\n`);
    shutdown().finally(() => process.exit(2));
  }, opts.timeoutS * 1000);
  timer.unref();

  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) {
      process.stderr.write(`nestjs-subscriber: kafka consumer crashed: ${describeError(payload.error)}\n`);
      shutdown().finally(() => process.exit(4));
    }
  });

  await consumer.connect();
  await consumer.subscribe({ topics: opts.topics, fromBeginning: true });
  await consumer.run({ autoCommit: false, eachMessage: handleMessage });

  await finished;
  await shutdown();
  clearTimeout(timer);

  const seconds = firstReceived !== null && lastAcked !== null ? Number(lastAcked - firstReceived) / 1e9 : 0;
  latenciesMs.sort((a, b) => a - b);
  const result = {
    events: appended,
    errors: failed,
    first_to_last_s: round3(seconds),
    events_per_s: seconds > 0 ? Math.round((appended / seconds) * 10) / 10 : 0,
    bytes,
    cpu_s: cpuAtLast ? round3((cpuAtLast.user + cpuAtLast.system) / 1e6) : 0,
    append_latency_ms: { p50: round3(percentile(latenciesMs, 50)), p99: round3(percentile(latenciesMs, 99)) },
  };
  const line = JSON.stringify(result);
  if (opts.result) writeFileSync(opts.result, `${line}\n`);
  else writeSync(1, `${line}\n`);
  if (failed > 0) {
    process.stderr.write(`nestjs-subscriber: ${failed} of ${opts.events} messages failed\n`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((error) => {
  fail(4, `fatal: ${error?.stack ?? error}`);
});

// serve-store against the official @eventstore/db-client (6.x): appends with every expected
// revision through BatchAppend and through Append, wrong-expected-version errors, stream reads.
// This process loads only this client (see README.md).
import { createRequire } from "node:module";
import { defineStreamSuite } from "./lib/stream_suite.mjs";

const require = createRequire(import.meta.url);
const lib = require("@eventstore/db-client");

defineStreamSuite({
  label: "@eventstore/db-client",
  lib,
  connect: (server) => lib.EventStoreDBClient.connectionString(server.esdb),
  appendOptions: (state) => ({ expectedRevision: state }),
  wrongVersionFields: { expected: "expectedVersion", actual: "actualVersion" },
  streamsGrpcModule: "@eventstore/db-client/generated/streams_grpc_pb",
});

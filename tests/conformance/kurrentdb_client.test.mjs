// serve-store against the official @kurrent/kurrentdb-client (1.x): appends with every expected
// state through BatchAppend and through Append, wrong-expected-version errors, stream reads.
// This process loads only this client (see README.md).
import { createRequire } from "node:module";
import { defineStreamSuite } from "./lib/stream_suite.mjs";

const require = createRequire(import.meta.url);
const lib = require("@kurrent/kurrentdb-client");

defineStreamSuite({
  label: "@kurrent/kurrentdb-client",
  lib,
  connect: (server) => lib.KurrentDBClient.connectionString(server.kurrentdb),
  appendOptions: (state) => ({ streamState: state }),
  wrongVersionFields: { expected: "expectedState", actual: "actualState" },
  streamsGrpcModule: "@kurrent/kurrentdb-client/generated/kurrentdb/protocols/v1/streams_grpc_pb",
});

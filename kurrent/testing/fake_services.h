// Test doubles for the client's tests: bits of a KurrentDB server for what the real one
// (server/) never does, such as leaving an append unanswered.
#pragma once

#include <grpcpp/grpcpp.h>

#include <initializer_list>
#include <memory>
#include <vector>

#include "proto/kurrentdb/serverfeatures.grpc.pb.h"
#include "proto/kurrentdb/streams.grpc.pb.h"
#include "proto/kurrentdb/v2/streams.grpc.pb.h"

namespace kingest::kurrent::testing {

// ServerFeatures that lists these methods (its method and service names) as this server version.
class ListedFeatures : public event_store::client::server_features::ServerFeatures::CallbackService {
 public:
  struct Method {
    const char* name;
    const char* service;
  };
  ListedFeatures(std::initializer_list<Method> methods, const char* version) : methods_(methods), version_(version) {}

 private:
  grpc::ServerUnaryReactor* GetSupportedMethods(grpc::CallbackServerContext* ctx, const event_store::client::Empty*,
                                                event_store::client::server_features::SupportedMethods* out) override {
    for (const Method& method : methods_) {
      auto* m = out->add_methods();
      m->set_method_name(method.name);
      m->set_service_name(method.service);
    }
    out->set_event_store_server_version(version_);
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

  std::vector<Method> methods_;
  const char* version_;
};

// ServerFeatures that lists BatchAppend, as KurrentDB 24.10 does.
class BatchFeatures final : public ListedFeatures {
 public:
  BatchFeatures() : ListedFeatures({{"batchappend", "event_store.client.streams.streams"}}, "24.10.0") {}
};

// ServerFeatures of a 26.1 server: BatchAppend and AppendRecords.
class RecordsFeatures final : public ListedFeatures {
 public:
  RecordsFeatures()
      : ListedFeatures({{"batchappend", "event_store.client.streams.streams"},
                        {"appendrecords", "kurrentdb.protocol.v2.streams.streamsservice"}},
                       "26.1.0") {}
};

// A Read answer with no event at all (every stream looks missing): enough for the client's
// connection check.
inline grpc::ServerWriteReactor<event_store::client::streams::ReadResp>* empty_read() {
  class R final : public grpc::ServerWriteReactor<event_store::client::streams::ReadResp> {
   public:
    R() { Finish(grpc::Status::OK); }
    void OnDone() override { delete this; }
  };
  return new R();
}

// Streams whose every read answers an empty stream (the connection check passes), for a client
// that appends through another service.
class EmptyReads final : public event_store::client::streams::Streams::CallbackService {
  grpc::ServerWriteReactor<event_store::client::streams::ReadResp>* Read(
      grpc::CallbackServerContext*, const event_store::client::streams::ReadReq*) override {
    return empty_read();
  }
};

// A server on a free loopback port with these services (`*port` gets the port).
inline std::unique_ptr<grpc::Server> serve(std::initializer_list<grpc::Service*> services, int* port) {
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  for (auto* service : services) b.RegisterService(service);
  return b.BuildAndStart();
}

}  // namespace kingest::kurrent::testing

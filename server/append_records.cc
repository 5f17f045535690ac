// v2 StreamsService.AppendRecords (KurrentDB 26.1): records of many streams interleaved in one
// unary request, revision checks kept apart from the records, all or nothing; every failing check
// is reported at once. The request is read from its bytes (records_wire.h), checked and converted
// on gRPC's thread, then written as one store transaction (`EventStore::append_multi`), which
// evaluates the checks with the write; the answer is sent from the store's writer thread.
#include <grpc/slice.h>

#include <algorithm>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "proto/kurrentdb/records_wire.h"
#include "proto/kurrentdb/status.pb.h"
#include "proto/kurrentdb/v2/errors.pb.h"
#include "server/internal/records_wire.h"
#include "server/internal/server.h"

namespace kingest::server::internal {
namespace {

namespace v2err = ::kurrentdb::protocol::v2::streams::errors;

grpc::Status invalid(const std::string& message) { return {grpc::StatusCode::INVALID_ARGUMENT, message}; }

// This absl's string_view is its own type, not std::string_view.
absl::string_view av(std::string_view s) { return {s.data(), s.size()}; }

constexpr std::string_view kJsonContentType = "application/json";
constexpr std::string_view kBinaryContentType = "application/octet-stream";

int32_t clamp32(size_t n) { return static_cast<int32_t>(std::min<size_t>(n, INT32_MAX)); }

int32_t check_index(uint32_t index) {
  return index == store::CheckViolation::kNoCheck ? -1 : static_cast<int32_t>(index);
}

grpc::Status violation_status(const std::vector<std::string_view>& streams,
                              const std::vector<store::CheckViolation>& violations) {
  v2err::AppendConsistencyViolationErrorDetails details;
  std::string message = absl::StrCat("append consistency violation: ", violations.size(), " failing check",
                                     violations.size() == 1 ? "" : "s");
  for (size_t i = 0; i < violations.size(); ++i) {
    const auto& v = violations[i];
    auto* out = details.add_violations();
    out->set_check_index(check_index(v.check_index));
    auto* state = out->mutable_stream_state();
    state->set_stream(std::string(streams[v.stream]));
    state->set_expected_state(wire::v2_expected_value(v.expected));
    state->set_actual_state(v.actual);
    if (i < 8) {
      absl::StrAppend(&message, i == 0 ? ": " : "; ", "stream '", av(streams[v.stream]), "' expected ",
                      wire::v2_expected_value(v.expected), ", actual ", v.actual);
    } else if (i == 8) {
      absl::StrAppend(&message, "; ...");
    }
  }
  return v2_error(grpc::StatusCode::FAILED_PRECONDITION, "APPEND_CONSISTENCY_VIOLATION", message, &details);
}

// A stream name with its hash already taken.
struct HashedName {
  std::string_view name;
  uint64_t hash;
  struct Hash {
    size_t operator()(const HashedName& n) const { return n.hash; }
  };
  struct Eq {
    bool operator()(const HashedName& a, const HashedName& b) const { return a.name == b.name; }
  };
};

}  // namespace

void append_records(Shared& shared, const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
                    std::function<void(const grpc::Status&)> done) {
  // One contiguous copy of the bytes when gRPC holds them in several slices; the records are views
  // into it while the store's request is built.
  grpc::Slice bytes;
  if (!request.TrySingleSlice(&bytes).ok() && !request.DumpToSingleSlice(&bytes).ok()) {
    return done(invalid("append records: the request's bytes cannot be read"));
  }
  thread_local std::vector<WireRecord> records;
  thread_local std::vector<WireCheck> checks;
  if (auto s = read_append_records(std::string_view(reinterpret_cast<const char*>(bytes.begin()), bytes.size()),
                                   &records, &checks);
      !s.ok()) {
    return done(to_grpc(s));
  }
  if (records.empty()) return done(invalid("append records: the request holds no records"));
  store::MultiAppend plan;
  // The names as views into the request: the slice is kept until the answer is written. Each is
  // hashed once, with the store's hash, which both this index and the store's own lookups take.
  std::vector<std::string_view> names;
  std::vector<uint64_t> hashes;
  absl::flat_hash_map<HashedName, uint32_t, HashedName::Hash, HashedName::Eq> index;
  // Sized for a stream per record (wide data's requests come close), so it never grows on the way.
  names.reserve(records.size());
  hashes.reserve(records.size());
  index.reserve(records.size());
  auto stream_index = [&](std::string_view name) {
    const uint64_t h = store::EventStore::stream_hash(name);
    auto [it, fresh] = index.try_emplace(HashedName{name, h}, static_cast<uint32_t>(names.size()));
    if (fresh) {
      names.push_back(name);
      hashes.push_back(h);
    }
    return it->second;
  };
  // The store borrows the records' bytes: type and data from the request, the metadata JSON from
  // one text for the whole request (both owned by the callback below, so they outlive the write).
  // The text grows while it is written, so the views into it are made once it is complete.
  auto metadata = std::make_shared<std::string>();
  size_t metadata_bytes = 0;
  for (const WireRecord& rec : records) metadata_bytes += rec.message.size() - rec.data.size() + 64;
  metadata->reserve(metadata_bytes);
  thread_local std::vector<size_t> metadata_ends;
  metadata_ends.clear();
  size_t total = 0;
  plan.record_views.reserve(records.size());
  for (const WireRecord& rec : records) {
    if (rec.stream.empty()) return done(invalid("append records: a record without a stream"));
    auto id = Uuid::parse(rec.record_id);
    if (!id) return done(invalid(absl::StrCat("record_id '", av(rec.record_id), "' is not a UUID")));
    if (rec.schema_name.empty()) return done(invalid("record without schema.name (event type)"));
    const auto format = static_cast<v2::SchemaFormat>(rec.schema_format);
    const size_t metadata_start = metadata->size();
    if (auto s = append_properties_json(rec, schema_format_name(format), metadata.get()); !s.ok()) {
      return done(to_grpc(s));
    }
    metadata_ends.push_back(metadata->size());
    const size_t size = rec.data.size() + (metadata->size() - metadata_start) + 2 * rec.schema_name.size();
    if (size > shared.options.max_event_size) {
      v2err::AppendRecordSizeExceededErrorDetails d;
      d.set_stream(std::string(rec.stream));
      d.set_record_id(std::string(rec.record_id));
      d.set_size(clamp32(size));
      d.set_max_size(clamp32(shared.options.max_event_size));
      return done(v2_error(grpc::StatusCode::INVALID_ARGUMENT, "APPEND_RECORD_SIZE_EXCEEDED",
                           absl::StrCat("record ", av(rec.record_id), " of stream '", av(rec.stream), "' is ", size,
                                        " bytes, over the ", shared.options.max_event_size, " bytes allowed"),
                           &d));
    }
    total += size;
    const std::string_view content_type = format == v2::SCHEMA_FORMAT_JSON ? kJsonContentType : kBinaryContentType;
    plan.record_views.push_back({.stream = stream_index(rec.stream),
                                 .id = *id,
                                 .type = rec.schema_name,
                                 .content_type = content_type,
                                 .data = rec.data,
                                 .metadata = {}});
  }
  for (size_t i = 0, start = 0; i < plan.record_views.size(); start = metadata_ends[i++]) {
    plan.record_views[i].metadata = std::string_view(*metadata).substr(start, metadata_ends[i] - start);
  }
  if (total > shared.options.max_append_size) {
    v2err::AppendTransactionSizeExceededErrorDetails d;
    d.set_size(clamp32(total));
    d.set_max_size(clamp32(shared.options.max_append_size));
    return done(v2_error(grpc::StatusCode::ABORTED, "APPEND_TRANSACTION_SIZE_EXCEEDED",
                         absl::StrCat("append records: ", total, " bytes, over the ", shared.options.max_append_size,
                                      " bytes of one append"),
                         &d));
  }
  for (const WireCheck& c : checks) {
    if (!c.has_stream_state) return done(invalid("append records: a consistency check without a type"));
    if (c.stream.empty()) return done(invalid("append records: a consistency check without a stream"));
    auto expected = wire::expected_of_v2(c.expected_state);
    if (!expected.ok()) {
      return done(invalid(absl::StrCat("append records: check of stream '", av(c.stream), "': ",
                                       expected.status().message())));
    }
    plan.checks.push_back({.stream = stream_index(c.stream), .expected = *expected});
  }
  plan.stream_views = names;
  plan.stream_hashes = std::move(hashes);
  shared.store.append_multi(
      std::move(plan), [bytes = std::move(bytes), metadata = std::move(metadata), names = std::move(names), response,
                        done = std::move(done)](store::MultiAppendResult r) {
        switch (r.status) {
          case store::AppendStatus::kSuccess: {
            // One revision per stream written, in the order of the streams' first records, written
            // straight into the answer's slice (this runs on the store's one writer thread).
            std::sort(r.revisions.begin(), r.revisions.end());
            std::vector<std::pair<std::string_view, int64_t>> revisions;
            revisions.reserve(r.revisions.size());
            for (const auto& [s, rev] : r.revisions) revisions.emplace_back(names[s], static_cast<int64_t>(rev.value()));
            const auto position = static_cast<int64_t>(r.position);
            grpc_slice raw = grpc_slice_malloc(::kingest::wire::records_answer_size(revisions, position));
            ::kingest::wire::write_records_answer(revisions, position, reinterpret_cast<char*>(GRPC_SLICE_START_PTR(raw)));
            grpc::Slice encoded(raw, grpc::Slice::STEAL_REF);
            *response = grpc::ByteBuffer(&encoded, 1);
            return done(grpc::Status::OK);
          }
          case store::AppendStatus::kWrongExpectedVersion:
          case store::AppendStatus::kStreamDeleted:
            return done(violation_status(names, r.violations));
          case store::AppendStatus::kError:
            return done({grpc::StatusCode::UNAVAILABLE, "append records: " + r.message});
        }
      });
}

}  // namespace kingest::server::internal

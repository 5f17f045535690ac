// What SIGINT/SIGTERM do in serve-store keeps every acknowledged append.
#include <algorithm>

#include "core/testing/eventually.h"
#include "server/testing/server_fixture.h"

namespace kingest::server::test {
namespace {

// ---- durability across shutdown ----

// What SIGINT/SIGTERM do in serve-store (server shutdown, then store close), under appends from
// several Append and BatchAppend callers: every event a client saw acknowledged is in the file
// after it is reopened.
TEST(ServerDurabilityTest, EveryAcknowledgedAppendSurvivesShutdownAndReopen) {
  const auto dir = std::filesystem::temp_directory_path() / ("ki-server-durable-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "events.db").string();
  auto store = store::EventStore::open({.path = path}).value();
  auto server = KurrentServer::start(*store, {.listen = "127.0.0.1:0"}).value();
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());

  std::mutex mu;
  std::map<std::string, std::vector<Uuid>> acked;  // stream -> acknowledged ids
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto stub = streams::Streams::NewStub(channel);
      const std::string s = "dur-append-" + std::to_string(t);
      while (!stop.load()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        streams::AppendResp resp;
        auto writer = stub->Append(&ctx, &resp);
        streams::AppendReq req;
        req.mutable_options()->mutable_stream_identifier()->set_stream_name(s);
        req.mutable_options()->mutable_any();
        writer->Write(req);
        std::vector<Ev> evs(2);
        for (const auto& e : evs) {
          streams::AppendReq m;
          fill(e, m.mutable_proposed_message());
          writer->Write(m);
        }
        writer->WritesDone();
        if (writer->Finish().ok() && resp.has_success()) {
          std::lock_guard lock(mu);
          for (const auto& e : evs) acked[s].push_back(e.id);
        }
      }
    });
  }
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      auto stub = streams::Streams::NewStub(channel);
      const std::string s = "dur-batch-" + std::to_string(t);
      while (!stop.load()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        auto call = stub->BatchAppend(&ctx);
        std::map<std::string, std::vector<Ev>> sent;  // correlation id -> events
        bool open = true;
        for (int i = 0; i < 50 && open && !stop.load(); ++i) {
          Uuid cid = Uuid::v4();
          std::vector<Ev> evs(3);
          streams::BatchAppendReq req;
          req.mutable_correlation_id()->set_string(cid.to_string());
          req.mutable_options()->mutable_stream_identifier()->set_stream_name(s);
          req.mutable_options()->mutable_any();
          for (const auto& e : evs) fill(e, req.add_proposed_messages());
          req.set_is_final(true);
          sent[cid.to_string()] = evs;
          open = call->Write(req);
        }
        call->WritesDone();
        streams::BatchAppendResp resp;
        while (call->Read(&resp)) {
          if (!resp.has_success()) continue;
          std::lock_guard lock(mu);
          for (const auto& e : sent[resp.correlation_id().string()]) acked[s].push_back(e.id);
        }
        call->Finish();
      }
    });
  }
  // Shut down under load: once every caller has had appends acknowledged, with more on the way.
  EXPECT_TRUE(kingest::testing::eventually(
      [&] {
        std::lock_guard lock(mu);
        return acked.size() == threads.size() &&
               std::all_of(acked.begin(), acked.end(), [](const auto& a) { return a.second.size() >= 20; });
      },
      std::chrono::seconds(30), "twenty acknowledged events from each caller"));
  server->shutdown();
  store->close();
  stop = true;
  for (auto& th : threads) th.join();
  server.reset();
  store.reset();

  auto reopened = store::EventStore::open({.path = path}).value();
  size_t total = 0;
  for (const auto& [stream, ids] : acked) {
    auto page = reopened->read(stream, store::ReadFrom::start(), 10'000'000, store::ReadDirection::kForwards);
    ASSERT_TRUE(page.ok()) << page.status();
    std::set<Uuid> stored;
    for (const auto& e : page->events) stored.insert(e.id);
    for (const auto& id : ids) EXPECT_TRUE(stored.count(id)) << stream << " lost acknowledged " << id.to_string();
    total += ids.size();
  }
  EXPECT_GT(total, 0u);
  reopened->close();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kingest::server::test

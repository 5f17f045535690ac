#include "store/event_store.h"

#include <memory>
#include <utility>

#include "store/internal/sqlite_event_store.h"

namespace kingest::store {

absl::StatusOr<std::unique_ptr<EventStore>> EventStore::open(const StoreOptions& options) {
  auto store = internal::SqliteEventStore::create(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<EventStore>(std::move(*store));
}

AppendResult EventStore::append_sync(std::string stream, ExpectedRevision expected, std::vector<ProposedEvent> events) {
  // Shared so that the promise outlives the writer's set_value even after this caller returns.
  auto promise = std::make_shared<std::promise<AppendResult>>();
  std::future<AppendResult> future = promise->get_future();
  append(std::move(stream), expected, std::move(events),
         [promise](AppendResult r) { promise->set_value(std::move(r)); });
  return future.get();
}

MultiAppendResult EventStore::append_multi_sync(MultiAppend request) {
  auto promise = std::make_shared<std::promise<MultiAppendResult>>();
  std::future<MultiAppendResult> future = promise->get_future();
  append_multi(std::move(request), [promise](MultiAppendResult r) { promise->set_value(std::move(r)); });
  return future.get();
}

}  // namespace kingest::store

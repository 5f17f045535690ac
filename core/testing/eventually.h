// Test support: waits for a condition with a deadline instead of sleeping for a guessed time. A test
// that waits for a result asserts `eventually(...)`; when the deadline passes, the failure says what
// never happened and for how long it was awaited.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string_view>
#include <thread>

namespace kingest::testing {

// Polls `pred` until it holds or `timeout` passes. The pause between polls bounds the busy-waiting
// on a loaded machine; it is not a guess at how long the awaited work takes. A costly `pred` (one
// that tries to start a server) takes a longer `poll`.
template <typename Pred>
::testing::AssertionResult eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                      std::string_view what = "the condition",
                                      std::chrono::milliseconds poll = std::chrono::milliseconds(1)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return ::testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() >= deadline) {
      return ::testing::AssertionFailure() << "gave up after " << timeout.count() << " ms waiting for " << what;
    }
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace kingest::testing

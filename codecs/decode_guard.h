// The boundary every decoder keeps: whatever happens inside, the caller gets a DecodeResult, never
// an exception (a decoder runs inside a flow-graph node, where an escaping exception would cancel
// the whole graph).
#pragma once

#include <exception>
#include <new>
#include <string>

#include "codecs/json_codec.h"

namespace kingest::codecs::detail {

template <class F>
DecodeResult guard_decode(F&& decode) noexcept {
  try {
    return decode();
  } catch (const std::bad_alloc&) {
    return DecodeError{"out of memory while decoding"};
  } catch (const std::exception& e) {
    return DecodeError{std::string("internal error while decoding: ") + e.what()};
  } catch (...) {
    return DecodeError{"internal error while decoding"};
  }
}

}  // namespace kingest::codecs::detail

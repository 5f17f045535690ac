#include "core/types.h"

namespace kingest {

std::string to_string(const ExpectedRevision& e) {
  struct V {
    std::string operator()(StreamRevision r) const { return std::to_string(r.value()); }
    std::string operator()(ExpectNoStream) const { return "no_stream"; }
    std::string operator()(ExpectAny) const { return "any"; }
    std::string operator()(ExpectStreamExists) const { return "stream_exists"; }
  };
  return std::visit(V{}, e);
}

std::string to_string(const TopicPartition& tp) { return tp.topic + "[" + std::to_string(tp.partition) + "]"; }

}  // namespace kingest

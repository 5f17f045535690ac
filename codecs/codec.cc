#include "codecs/codec.h"

#include "codecs/binary_envelope.h"

namespace kingest::codecs {

std::string_view codec_name(Codec codec) {
  switch (codec) {
    case Codec::kJson: return "json";
    case Codec::kProtobuf: return "protobuf";
    case Codec::kFlatBuffers: return "flatbuffers";
    case Codec::kJsonNested: return "json-nested";
  }
  return "unknown";
}

std::optional<Codec> parse_codec_name(std::string_view name) {
  for (Codec c : {Codec::kJson, Codec::kProtobuf, Codec::kFlatBuffers, Codec::kJsonNested}) {
    if (iequals(name, codec_name(c))) return c;
  }
  return std::nullopt;
}

std::optional<Codec> codec_for_content_type(std::string_view header) {
  // The header nearly every JSON message carries, spelled as the essence it is: no parsing.
  if (header == "application/json") return Codec::kJson;
  const std::string_view t = media_type_essence(header);
  if (iequals(t, "application/json") || iequals(t, "text/json")) return Codec::kJson;
  if (iequals(t, "application/x-protobuf") || iequals(t, "application/protobuf")) return Codec::kProtobuf;
  if (iequals(t, "application/x-flatbuffers")) return Codec::kFlatBuffers;
  return std::nullopt;
}

std::string_view content_type_for(Codec codec) {
  switch (codec) {
    case Codec::kJson:
    case Codec::kJsonNested: return "application/json";
    case Codec::kProtobuf: return "application/x-protobuf";
    case Codec::kFlatBuffers: return "application/x-flatbuffers";
  }
  return "application/octet-stream";
}

DecodeResult decode(Codec codec, const std::string& bytes) {
  switch (codec) {
    case Codec::kJson: return decode_json(bytes);
    case Codec::kProtobuf: return decode_protobuf(bytes);
    case Codec::kFlatBuffers: return decode_flatbuffers(bytes);
    case Codec::kJsonNested: return decode_json(bytes, JsonShape::kNested);
  }
  return DecodeError{"unknown codec"};
}

std::string unsupported_content_type_reason(std::string_view header) {
  return "unsupported content-type '" + detail::printable(header) +
         "' (supported: application/json, text/json, application/x-protobuf, application/protobuf, "
         "application/x-flatbuffers)";
}

DecodeResult decode_message(const SourceMessage& m, const std::map<std::string, Codec>& topic_codecs) {
  Codec codec = Codec::kJson;
  if (!m.content_type.empty()) {
    auto c = codec_for_content_type(m.content_type);
    if (!c) return DecodeError{unsupported_content_type_reason(m.content_type)};
    codec = *c;
  } else if (auto it = topic_codecs.find(m.tp.topic); it != topic_codecs.end()) {
    codec = it->second;
  }
  if (m.value.empty()) return DecodeError{"empty message value (a Kafka tombstone or an empty payload)"};
  return decode(codec, m.value);
}

}  // namespace kingest::codecs

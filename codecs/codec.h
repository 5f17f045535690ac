// Envelope formats and content-type routing: which codec decodes a Kafka message value.
//
// The pipeline picks the codec from the message's `content-type` header when it has one, else
// from the topic's configured codec (parse_codec_name), else JSON; a header that names no known
// format is a decode error (the message is dead-lettered), never a guess.
//
//   std::optional<Codec> c = msg.content_type.empty() ? topic_codec : codec_for_content_type(msg.content_type);
//   DecodeResult r = c ? decode(*c, msg.value) : DecodeResult{DecodeError{"unsupported content-type ..."}};
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "codecs/flatbuffers_codec.h"
#include "core/domain_event.h"
#include "codecs/json_codec.h"
#include "codecs/protobuf_codec.h"

namespace kingest::codecs {

// kJsonNested is JSON in the nested shape ({envelope…, "data": {…}}): only ever a topic's setting,
// since a JSON content-type header cannot tell the shapes apart.
enum class Codec { kJson, kProtobuf, kFlatBuffers, kJsonNested };

// "json", "protobuf", "flatbuffers", "json-nested".
std::string_view codec_name(Codec codec);

// The codec named by a setting or flag: exactly "json", "protobuf", "flatbuffers" or
// "json-nested" (ASCII case ignored); anything else is std::nullopt.
std::optional<Codec> parse_codec_name(std::string_view name);

// The codec for a `content-type` header value; media type case and parameters are ignored:
//   application/json, text/json                   -> kJson  ("application/json; charset=utf-8" too)
//   application/x-protobuf, application/protobuf  -> kProtobuf
//   application/x-flatbuffers                     -> kFlatBuffers
//   anything else, including ""                   -> std::nullopt (callers treat "" as no header)
std::optional<Codec> codec_for_content_type(std::string_view header);

// The content-type header value producers should send for a codec ("application/json",
// "application/x-protobuf", "application/x-flatbuffers").
std::string_view content_type_for(Codec codec);

// Decodes with the given codec. JSON keeps decode_json's in-place parse when `bytes` has
// simdjson's padding capacity (SourceMessage::assign_value gives it).
DecodeResult decode(Codec codec, const std::string& bytes);

// The routing the ingest uses for a Kafka message: the codec of its `content-type` header, else
// its topic's codec in `topic_codecs`, else JSON; an empty value is a decode error (a tombstone).
DecodeResult decode_message(const SourceMessage& m, const std::map<std::string, Codec>& topic_codecs);

// One line naming an unsupported content type, for dead letters:
// "unsupported content-type 'text/plain' (supported: application/json, ...)".
std::string unsupported_content_type_reason(std::string_view header);

}  // namespace kingest::codecs

#include "messaging/v2_protocol.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <xxhash.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "compute/assert.hpp"
#include "messaging/feature_check.hpp"
#include "messaging/json.hpp"

namespace rml::messaging::v2 {
namespace {
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr const char* server_name = "rml";
constexpr const char* server_version = "0.5.0";

/// A V2 tensor's "name", "datatype" and "shape" ([rows, columns]; −1 for a size not fixed),
/// inside an object the caller opened.
void write_tensor_head(json_writer& writer, const char* name, const char* datatype, std::int64_t rows, std::int64_t columns) {
  writer.Key("name");
  writer.String(name);
  writer.Key("datatype");
  writer.String(datatype);
  writer.Key("shape");
  writer.StartArray();
  writer.Int64(rows);
  writer.Int64(columns);
  writer.EndArray();
}

/// Reads the elements of a (possibly nested) JSON array into `out`, as floats. The nesting
/// is bounded by json::depth_max, so the recursion is too.
bool flatten(const rapidjson::Value& value, std::vector<float>& out, bool integers) {
  if (value.IsArray()) {
    for (const auto& item : value.GetArray()) {
      if (!flatten(item, out, integers)) return false;
    }
    return true;
  }
  if (integers ? !(value.IsInt64() || value.IsUint64()) : !value.IsNumber()) return false;
  out.push_back(float(value.GetDouble()));  // beyond float's range: infinite, refused by the feature check
  return true;
}

std::size_t element_bytes(const std::string& datatype) {
  if (datatype == "FP32" || datatype == "INT32") return 4;
  if (datatype == "FP64" || datatype == "INT64") return 8;
  if (datatype == "UINT8") return 1;
  return 0;
}

std::vector<float> convert_binary(const std::string& datatype, const char* bytes, std::size_t count) {
  std::vector<float> out(count);
  auto each = [&](auto element) {
    using element_type = decltype(element);
    for (std::size_t index = 0; index < count; ++index) {
      std::memcpy(&element, bytes + index * sizeof(element_type), sizeof(element_type));
      out[index] = float(element);
    }
  };
  if (datatype == "FP32") std::memcpy(out.data(), bytes, count * sizeof(float));
  else if (datatype == "FP64") each(double{});
  else if (datatype == "INT64") each(std::int64_t{});
  else if (datatype == "INT32") each(std::int32_t{});
  else each(std::uint8_t{});
  return out;
}

/// The path split at '/', without the query.
std::vector<std::string_view> segments_of(std::string_view target) {
  target = target.substr(0, target.find('?'));
  std::vector<std::string_view> parts;
  while (!target.empty()) {
    if (target.front() == '/') {
      target.remove_prefix(1);
      continue;
    }
    const auto slash = target.find('/');
    parts.push_back(target.substr(0, slash));
    if (slash == std::string_view::npos) break;
    target.remove_prefix(slash);
  }
  return parts;
}

/// Parses the "parameters" and output choices of an infer body into `call`.
status read_options(const rapidjson::Document& document, infer_call& call) {
  bool binary_output = false;
  if (auto parameters = document.FindMember("parameters"); parameters != document.MemberEnd()) {
    if (!parameters->value.IsObject()) return error(errc::invalid_argument, "\"parameters\" must be an object");
    for (const auto& parameter : parameters->value.GetObject()) {
      const std::string_view name(parameter.name.GetString(), parameter.name.GetStringLength());
      if (name == "top_k") {
        if (!parameter.value.IsUint() || parameter.value.GetUint() == 0) return error(errc::invalid_argument, "parameter \"top_k\" must be an integer ≥ 1");
        call.request.top_k = parameter.value.GetUint();
      } else if (name == "timeout") {
        if (!parameter.value.IsInt64() || parameter.value.GetInt64() <= 0) return error(errc::invalid_argument, "parameter \"timeout\" must be microseconds > 0");
        call.timeout_us = parameter.value.GetInt64();
      } else if (name == "binary_data_output") {
        if (!parameter.value.IsBool()) return error(errc::invalid_argument, "parameter \"binary_data_output\" must be true or false");
        binary_output = parameter.value.GetBool();
      }
    }
  }
  call.probabilities_binary = call.classes_binary = binary_output;
  auto outputs = document.FindMember("outputs");
  if (outputs == document.MemberEnd()) return {};
  if (!outputs->value.IsArray()) return error(errc::invalid_argument, "\"outputs\" must be an array");
  call.probabilities = call.classes = false;
  for (const auto& output : outputs->value.GetArray()) {
    if (!output.IsObject()) return error(errc::invalid_argument, "every output must be an object");
    auto name = output.FindMember("name");
    if (name == output.MemberEnd() || !name->value.IsString()) return error(errc::invalid_argument, "every output needs a \"name\"");
    const std::string wanted(name->value.GetString(), name->value.GetStringLength());
    bool binary = binary_output;
    if (auto parameters = output.FindMember("parameters"); parameters != output.MemberEnd() && parameters->value.IsObject()) {
      if (auto flag = parameters->value.FindMember("binary_data"); flag != parameters->value.MemberEnd() && flag->value.IsBool()) {
        binary = flag->value.GetBool();
      }
    }
    if (wanted == "probabilities") call.probabilities = true, call.probabilities_binary = binary;
    else if (wanted == "classes") call.classes = true, call.classes_binary = binary;
    else return error(errc::not_found, "output '" + wanted + "' does not exist (probabilities, classes)");
  }
  return {};
}
}  // namespace

result<route> route_of(std::string_view target, const std::string& model) {
  const auto parts = segments_of(target);
  auto no_such_path = [&] { return error(errc::not_found, "no such path: " + std::string(target)); };
  if (parts.size() == 1 && parts[0] == "metrics") return route{route_kind::metrics};
  if (parts.size() == 1 && parts[0] == "trace") return route{route_kind::trace};
  if (parts.size() == 1 && parts[0] == "dashboard") return route{route_kind::dashboard};
  if (parts.size() == 2 && parts[0] == "dashboard" && parts[1] == "chart.js") return route{route_kind::dashboard_script};
  if (parts.empty() || parts[0] != "v2") return no_such_path();
  if (parts.size() == 1) return route{route_kind::server_metadata};
  if (parts.size() == 3 && parts[1] == "health" && parts[2] == "live") return route{route_kind::live};
  if (parts.size() == 3 && parts[1] == "health" && parts[2] == "ready") return route{route_kind::ready};
  if (parts.size() < 3 || parts[1] != "models") return no_such_path();
  if (parts[2] != model) {
    return error(errc::not_found, "model '" + std::string(parts[2]) + "' is not served here (this server serves '" + model + "')");
  }
  std::size_t next = 3;
  route found;
  if (parts.size() >= 5 && parts[3] == "versions") {
    const std::string_view text = parts[4];
    if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos || text.size() > 19 ||
        std::stoull(std::string(text)) == 0) {
      return error(errc::invalid_argument, "model version '" + std::string(text) + "' is not a version number ≥ 1");
    }
    found.version = std::stoull(std::string(text));
    next = 5;
  }
  if (parts.size() > next + 1) return no_such_path();
  const std::string_view action = parts.size() > next ? parts[next] : std::string_view{};
  if (action.empty()) found.kind = route_kind::model_metadata;
  else if (action == "ready") found.kind = route_kind::model_ready;
  else if (action == "infer") found.kind = route_kind::infer;
  else if (found.version == 0 && action == "feedback") found.kind = route_kind::feedback;
  else if (found.version == 0 && action == "policy") found.kind = route_kind::policy;
  else if (found.version == 0 && action == "batching") found.kind = route_kind::batching;
  else return no_such_path();
  return found;
}

bool takes_post(route_kind kind) {
  return kind == route_kind::infer || kind == route_kind::feedback || kind == route_kind::policy || kind == route_kind::batching;
}

bool is_control(route_kind kind) {
  return kind == route_kind::feedback || kind == route_kind::policy || kind == route_kind::batching;
}

result<infer_call> parse_infer(std::string_view body, const std::string* inference_header_length, const input_limits& limits,
                               std::shared_ptr<const void> keeper) {
  std::size_t json_bytes = body.size();
  if (inference_header_length != nullptr) {
    const std::string& text = *inference_header_length;
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || text[0] == '-' || *end != '\0' || value > body.size()) {
      return error(errc::invalid_argument, "Inference-Header-Content-Length '" + text + "' is not a length within the body of " +
                                               std::to_string(body.size()) + " bytes");
    }
    json_bytes = std::size_t(value);
  }
  rapidjson::Document document;
  if (auto parsed = json::parse(body.substr(0, json_bytes), document, "request body"); !parsed) return parsed.error();
  if (!document.IsObject()) return error(errc::invalid_argument, "request body must be a JSON object");
  infer_call call;
  if (auto id = document.FindMember("id"); id != document.MemberEnd()) {
    if (!id->value.IsString()) return error(errc::invalid_argument, "\"id\" must be a string");
    call.id.assign(id->value.GetString(), id->value.GetStringLength());
  }
  if (auto options = read_options(document, call); !options) return options.error();
  auto inputs = document.FindMember("inputs");
  if (inputs == document.MemberEnd() || !inputs->value.IsArray()) return error(errc::invalid_argument, "\"inputs\" must be an array of tensors");
  if (inputs->value.Size() != 1) {
    return error(errc::invalid_argument, "the model takes one input tensor, got " + std::to_string(inputs->value.Size()));
  }
  const auto& input = inputs->value[0];
  if (!input.IsObject()) return error(errc::invalid_argument, "inputs[0] must be an object");
  const std::string features = std::to_string(limits.features);
  auto shape = input.FindMember("shape");
  auto datatype = input.FindMember("datatype");
  if (shape == input.MemberEnd() || !shape->value.IsArray() || shape->value.Empty() || shape->value.Size() > 2) {
    return error(errc::invalid_argument, "inputs[0].shape must be [rows, " + features + "] or [" + features + "]");
  }
  if (datatype == input.MemberEnd() || !datatype->value.IsString()) return error(errc::invalid_argument, "inputs[0].datatype must be a string");
  const std::string type(datatype->value.GetString(), datatype->value.GetStringLength());
  if (element_bytes(type) == 0) {
    return error(errc::invalid_argument, "inputs[0].datatype " + type + " is not supported (FP32, FP64, INT64, INT32, UINT8)");
  }
  std::vector<std::int64_t> dims;
  for (const auto& dim : shape->value.GetArray()) {
    if (!dim.IsInt64() || dim.GetInt64() <= 0) return error(errc::invalid_argument, "inputs[0].shape must hold positive integers");
    dims.push_back(dim.GetInt64());
  }
  const std::int64_t rows = dims.size() == 2 ? dims[0] : 1;
  const std::int64_t width = dims.back();
  if (width != std::int64_t(limits.features)) {
    return error(errc::shape_mismatch, "inputs[0].shape ends in " + std::to_string(width) + ", the model takes " + features + " features");
  }
  if (rows > limits.rows_max) {
    return error(errc::invalid_argument, "inputs[0] has " + std::to_string(rows) + " rows, at most " + std::to_string(limits.rows_max));
  }
  const std::size_t elements = std::size_t(rows * width);
  std::size_t binary_bytes = 0;
  if (auto input_parameters = input.FindMember("parameters"); input_parameters != input.MemberEnd() && input_parameters->value.IsObject()) {
    if (auto size = input_parameters->value.FindMember("binary_data_size"); size != input_parameters->value.MemberEnd()) {
      if (!size->value.IsUint64()) return error(errc::invalid_argument, "inputs[0].parameters.binary_data_size must be a byte count");
      binary_bytes = std::size_t(size->value.GetUint64());
      if (binary_bytes != elements * element_bytes(type)) {
        return error(errc::shape_mismatch, "inputs[0] binary data of " + std::to_string(binary_bytes) + " bytes for shape of " +
                                               std::to_string(elements) + " " + type + " elements");
      }
      if (binary_bytes > body.size() - json_bytes) return error(errc::truncated, "inputs[0] binary data runs past the end of the body");
      if (type == "FP32" && keeper != nullptr) {
        call.request.features = feature_block::view_of(std::move(keeper), std::as_bytes(std::span(body.data() + json_bytes, binary_bytes)));
      } else {
        call.request.features = feature_block(convert_binary(type, body.data() + json_bytes, elements));
      }
    }
  }
  if (binary_bytes == 0) {
    std::vector<float> values;
    auto data = input.FindMember("data");
    if (data == input.MemberEnd()) return error(errc::invalid_argument, "inputs[0] has neither \"data\" nor binary data");
    values.reserve(elements);
    const bool integers = type == "INT64" || type == "INT32" || type == "UINT8";
    if (!flatten(data->value, values, integers)) {
      return error(errc::invalid_argument, std::string("inputs[0].data must hold ") + (integers ? "integers" : "numbers") + " (datatype " + type + ")");
    }
    if (values.size() != elements) {
      return error(errc::shape_mismatch, "inputs[0].data has " + std::to_string(values.size()) + " elements, the shape asks for " +
                                             std::to_string(elements));
    }
    call.request.features = feature_block(std::move(values));
  }
  if (auto checked = check_features(call.request.features.bytes(), limits.features, limits.feature_magnitude_max, "inputs[0]"); !checked) {
    return checked.error();
  }
  call.request.rows = std::uint32_t(rows);
  return call;
}

std::uint64_t numeric_id(std::string_view id) {
  if (id.empty()) return 0;
  if (id.find_first_not_of("0123456789") == std::string_view::npos && id.size() < 20) return std::stoull(std::string(id));
  return XXH3_64bits(id.data(), id.size());
}

std::pair<std::string, std::size_t> infer_response(const infer_call& call, const predict_reply& reply, const std::string& model) {
  for (float value : reply.probabilities.values) RML_ASSERT(std::isfinite(value), "serving answers only finite probabilities");
  rapidjson::StringBuffer buffer;
  json_writer writer(buffer);
  std::string binary;
  writer.StartObject();
  writer.Key("model_name");
  writer.String(model.c_str());
  writer.Key("model_version");
  writer.String(std::to_string(reply.model_version).c_str());
  if (!call.id.empty()) {
    writer.Key("id");
    writer.String(call.id.data(), rapidjson::SizeType(call.id.size()));  // UTF-8: the body was validated
  }
  writer.Key("outputs");
  writer.StartArray();
  const std::uint32_t top_k = reply.rows ? std::uint32_t(reply.top_classes.size() / reply.rows) : 0;
  auto tensor = [&](const char* name, const char* datatype, std::uint32_t columns, bool as_binary, auto write_data, std::size_t bytes,
                    const void* raw) {
    writer.StartObject();
    write_tensor_head(writer, name, datatype, reply.rows, columns);
    if (as_binary) {
      writer.Key("parameters");
      writer.StartObject();
      writer.Key("binary_data_size");
      writer.Uint64(bytes);
      writer.EndObject();
      binary.append(static_cast<const char*>(raw), bytes);
    } else {
      writer.Key("data");
      writer.StartArray();
      write_data();
      writer.EndArray();
    }
    writer.EndObject();
  };
  if (call.probabilities) {
    const auto& values = reply.probabilities.values;
    tensor("probabilities", "FP32", reply.classes, call.probabilities_binary,
           [&] { for (float value : values) writer.Double(double(value)); }, values.size() * sizeof(float), values.data());
  }
  if (call.classes) {
    std::vector<std::int64_t> classes(reply.top_classes.begin(), reply.top_classes.end());
    tensor("classes", "INT64", top_k, call.classes_binary, [&] { for (auto value : classes) writer.Int64(value); },
           classes.size() * sizeof(std::int64_t), classes.data());
  }
  writer.EndArray();
  writer.EndObject();
  std::string body(buffer.GetString(), buffer.GetSize());
  const std::size_t json_bytes = body.size();
  if (binary.empty()) return {std::move(body), 0};
  body += binary;
  return {std::move(body), json_bytes};
}

result<prediction_feedback> parse_feedback(std::string_view body) {
  rapidjson::Document document;
  if (auto parsed = json::parse(body, document, "feedback body"); !parsed) return parsed.error();
  if (!document.IsObject()) return error(errc::invalid_argument, "feedback body must be a JSON object");
  auto id = document.FindMember("id");
  auto label = document.FindMember("label");
  if (id == document.MemberEnd() || !(id->value.IsString() || id->value.IsUint64())) {
    return error(errc::invalid_argument, "feedback needs \"id\": the id of the infer request");
  }
  if (label == document.MemberEnd() || !label->value.IsInt() || label->value.GetInt() < 0) {
    return error(errc::invalid_argument, "feedback needs \"label\": the true class, an integer ≥ 0");
  }
  const std::uint64_t request_id =
      id->value.IsString() ? numeric_id({id->value.GetString(), id->value.GetStringLength()}) : id->value.GetUint64();
  return prediction_feedback{request_id, label->value.GetInt()};
}

result<std::string> parse_policy(std::string_view body) {
  rapidjson::Document document;
  const char* expected = "policy body must be {\"policy\": \"latest | pinned:V | canary:P | shadow | bandit:V1,V2\"}";
  if (auto parsed = json::parse(body, document, "policy body"); !parsed) return error(errc::invalid_argument, parsed.error().message() + "; " + expected);
  if (!document.IsObject() || !document.HasMember("policy") || !document["policy"].IsString()) return error(errc::invalid_argument, expected);
  return std::string(document["policy"].GetString(), document["policy"].GetStringLength());
}

batching_settings batching_change::applied_to(batching_settings settings) const {
  if (batch_rows_max) settings.batch_rows_max = *batch_rows_max;
  if (queue_requests_max) settings.queue_requests_max = *queue_requests_max;
  if (queue_delay_max_us) settings.queue_delay_max_us = *queue_delay_max_us;
  if (latency_objective_us) settings.latency_objective_us = *latency_objective_us;
  if (adaptive) settings.adaptive = *adaptive;
  return settings;
}

result<batching_change> parse_batching(std::string_view body) {
  rapidjson::Document document;
  if (auto parsed = json::parse(body, document, "batching body"); !parsed) return parsed.error();
  if (!document.IsObject()) return error(errc::invalid_argument, "batching body must be a JSON object");
  batching_change change;
  for (const auto& field : document.GetObject()) {
    const std::string name(field.name.GetString(), field.name.GetStringLength());
    const auto& value = field.value;
    auto integer_at_least = [&](std::int64_t low, std::int64_t high) -> result<std::int64_t> {
      if (!value.IsInt64() || value.GetInt64() < low || value.GetInt64() > high) {
        return error(errc::invalid_argument, "batching setting '" + name + "' must be an integer in [" + std::to_string(low) + ", " +
                                                 std::to_string(high) + "]");
      }
      return value.GetInt64();
    };
    constexpr std::int64_t count_max = 1 << 20, microseconds_max = 3'600'000'000;
    result<std::int64_t> number = std::int64_t(0);
    if (name == "batch_rows_max") {
      if ((number = integer_at_least(1, count_max))) change.batch_rows_max = std::uint32_t(*number);
    } else if (name == "queue_requests_max") {
      if ((number = integer_at_least(1, count_max))) change.queue_requests_max = std::uint32_t(*number);
    } else if (name == "queue_delay_max_us") {
      if ((number = integer_at_least(0, microseconds_max))) change.queue_delay_max_us = *number;
    } else if (name == "latency_objective_us") {
      if ((number = integer_at_least(1, microseconds_max))) change.latency_objective_us = *number;
    } else if (name == "adaptive") {
      if (!value.IsBool()) return error(errc::invalid_argument, "batching setting 'adaptive' must be true or false");
      change.adaptive = value.GetBool();
    } else {
      return error(errc::invalid_argument, "unknown batching setting '" + name +
                                               "' (batch_rows_max, queue_delay_max_us, adaptive, latency_objective_us, queue_requests_max)");
    }
    if (!number) return number.error();
  }
  return change;
}

std::string batching_json(const batching_settings& settings) {
  char body[256];
  std::snprintf(body, sizeof(body),
                "{\"batch_rows_max\":%u,\"queue_delay_max_us\":%lld,\"adaptive\":%s,\"latency_objective_us\":%lld,\"queue_requests_max\":%u}",
                settings.batch_rows_max, (long long)settings.queue_delay_max_us, settings.adaptive ? "true" : "false",
                (long long)settings.latency_objective_us, settings.queue_requests_max);
  return body;
}

std::string metadata_json(const serving_info& info) {
  rapidjson::StringBuffer buffer;
  json_writer writer(buffer);
  writer.StartObject();
  writer.Key("name");
  writer.String(info.model.c_str());
  writer.Key("versions");
  writer.StartArray();
  for (auto loaded : info.loaded_versions) writer.String(std::to_string(loaded).c_str());
  writer.EndArray();
  writer.Key("platform");
  writer.String("rml");
  writer.Key("inputs");
  writer.StartArray();
  writer.StartObject();
  write_tensor_head(writer, "input", "FP32", -1, info.features);
  writer.EndObject();
  writer.EndArray();
  writer.Key("outputs");
  writer.StartArray();
  writer.StartObject();
  write_tensor_head(writer, "probabilities", "FP32", -1, info.classes);
  writer.EndObject();
  writer.StartObject();
  write_tensor_head(writer, "classes", "INT64", -1, -1);  // top_k columns: the request chooses
  writer.EndObject();
  writer.EndArray();
  writer.Key("parameters");
  writer.StartObject();
  writer.Key("policy");
  writer.String(info.policy.c_str());
  writer.Key("serving_version");
  writer.Uint64(info.serving_version);
  writer.EndObject();
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::string server_metadata_json() {
  return std::string("{\"name\":\"") + server_name + "\",\"version\":\"" + server_version +
         "\",\"extensions\":[\"binary_tensor_data\",\"rml_feedback\",\"rml_metrics\"]}";
}

std::string error_json(std::string_view message) { return json::object_with("error", message); }

}  // namespace rml::messaging::v2

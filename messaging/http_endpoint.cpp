#include "messaging/http_endpoint.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <caf/all.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <xxhash.h>

#include <cstring>
#include <thread>
#include <unordered_map>

#include "messaging/actor_bridge.hpp"
#include "messaging/errors.hpp"
#include "messaging/messages.hpp"
#include "messaging/metrics_registry.hpp"
#include "messaging/trace.hpp"
#include "messaging/type_ids.hpp"

namespace rml::messaging {
namespace {
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using response = http::response<http::string_body>;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr const char* server_name = "rml";
constexpr const char* server_version = "0.4.0";
/// A connection with no request for this long is closed.
constexpr auto idle_timeout = std::chrono::seconds(120);

http::status status_of(errc code) {
  switch (code) {
    case errc::invalid_argument:
    case errc::shape_mismatch:
    case errc::parse_error:
    case errc::truncated:
      return http::status::bad_request;
    case errc::not_found:
      return http::status::not_found;
    case errc::overloaded:
    case errc::not_ready:
      return http::status::service_unavailable;
    case errc::deadline_exceeded:
      return http::status::gateway_timeout;
    default:
      return http::status::internal_server_error;
  }
}

std::string json_error(const std::string& message) {
  rapidjson::StringBuffer buffer;
  json_writer writer(buffer);
  writer.StartObject();
  writer.Key("error");
  writer.String(message.c_str(), rapidjson::SizeType(message.size()));
  writer.EndObject();
  return buffer.GetString();
}

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

/// What a parsed infer request asks for.
struct infer_call {
  std::string id;
  predict_request request;
  bool probabilities = true, classes = true;
  bool probabilities_binary = false, classes_binary = false;
  std::int64_t timeout_us = 0;
};

/// Reads the elements of a (possibly nested) JSON array into `out`, as floats.
bool flatten(const rapidjson::Value& value, std::vector<float>& out, bool integers) {
  if (value.IsArray()) {
    for (const auto& item : value.GetArray()) {
      if (!flatten(item, out, integers)) return false;
    }
    return true;
  }
  if (integers ? !(value.IsInt64() || value.IsUint64()) : !value.IsNumber()) return false;
  out.push_back(float(value.GetDouble()));
  return true;
}

std::size_t element_bytes(const std::string& datatype) {
  if (datatype == "FP32" || datatype == "INT32") return 4;
  if (datatype == "FP64" || datatype == "INT64") return 8;
  if (datatype == "UINT8") return 1;
  return 0;
}

void convert_binary(const std::string& datatype, const char* bytes, std::size_t count, std::vector<float>& out) {
  out.resize(count);
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
}

/// Parses a V2 infer request body; the error names the field and what was wrong.
result<infer_call> parse_infer(const http::request<http::string_body>& request, std::uint32_t features) {
  const std::string& body = request.body();
  std::size_t json_bytes = body.size();
  if (auto header = request.find("Inference-Header-Content-Length"); header != request.end()) {
    const std::string text(header->value());
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || value > body.size()) {
      return error(errc::invalid_argument, "Inference-Header-Content-Length '" + text + "' is not a length within the body of " +
                                               std::to_string(body.size()) + " bytes");
    }
    json_bytes = std::size_t(value);
  }
  rapidjson::Document document;
  document.Parse(body.data(), json_bytes);
  if (document.HasParseError()) {
    return error(errc::parse_error, "request body is not valid JSON (error at byte " + std::to_string(document.GetErrorOffset()) + ")");
  }
  if (!document.IsObject()) return error(errc::invalid_argument, "request body must be a JSON object");
  infer_call call;
  if (auto id = document.FindMember("id"); id != document.MemberEnd()) {
    if (!id->value.IsString()) return error(errc::invalid_argument, "\"id\" must be a string");
    call.id = id->value.GetString();
  }
  bool binary_output = false;
  if (auto parameters = document.FindMember("parameters"); parameters != document.MemberEnd()) {
    if (!parameters->value.IsObject()) return error(errc::invalid_argument, "\"parameters\" must be an object");
    for (const auto& parameter : parameters->value.GetObject()) {
      const std::string name = parameter.name.GetString();
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
  auto inputs = document.FindMember("inputs");
  if (inputs == document.MemberEnd() || !inputs->value.IsArray()) return error(errc::invalid_argument, "\"inputs\" must be an array of tensors");
  if (inputs->value.Size() != 1) {
    return error(errc::invalid_argument, "the model takes one input tensor, got " + std::to_string(inputs->value.Size()));
  }
  const auto& input = inputs->value[0];
  if (!input.IsObject()) return error(errc::invalid_argument, "inputs[0] must be an object");
  auto shape = input.FindMember("shape");
  auto datatype = input.FindMember("datatype");
  if (shape == input.MemberEnd() || !shape->value.IsArray() || shape->value.Empty() || shape->value.Size() > 2) {
    return error(errc::invalid_argument, "inputs[0].shape must be [rows, " + std::to_string(features) + "] or [" + std::to_string(features) + "]");
  }
  if (datatype == input.MemberEnd() || !datatype->value.IsString()) return error(errc::invalid_argument, "inputs[0].datatype must be a string");
  const std::string type = datatype->value.GetString();
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
  if (width != std::int64_t(features)) {
    return error(errc::shape_mismatch, "inputs[0].shape ends in " + std::to_string(width) + ", the model takes " + std::to_string(features) + " features");
  }
  if (rows > 65'536) return error(errc::invalid_argument, "inputs[0] has " + std::to_string(rows) + " rows, at most 65536");
  const std::size_t elements = std::size_t(rows * width);
  auto& values = call.request.features.values;
  std::size_t binary_bytes = 0;
  if (auto input_parameters = input.FindMember("parameters"); input_parameters != input.MemberEnd() && input_parameters->value.IsObject()) {
    if (auto size = input_parameters->value.FindMember("binary_data_size"); size != input_parameters->value.MemberEnd()) {
      if (!size->value.IsUint64()) return error(errc::invalid_argument, "inputs[0].parameters.binary_data_size must be a byte count");
      binary_bytes = std::size_t(size->value.GetUint64());
      if (binary_bytes != elements * element_bytes(type)) {
        return error(errc::shape_mismatch, "inputs[0] binary data of " + std::to_string(binary_bytes) + " bytes for shape of " +
                                               std::to_string(elements) + " " + type + " elements");
      }
      if (json_bytes + binary_bytes > body.size()) {
        return error(errc::truncated, "inputs[0] binary data runs past the end of the body");
      }
      convert_binary(type, body.data() + json_bytes, elements, values);
    }
  }
  if (binary_bytes == 0) {
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
  }
  call.request.rows = std::uint32_t(rows);
  call.probabilities_binary = call.classes_binary = binary_output;
  if (auto outputs = document.FindMember("outputs"); outputs != document.MemberEnd()) {
    if (!outputs->value.IsArray()) return error(errc::invalid_argument, "\"outputs\" must be an array");
    call.probabilities = call.classes = false;
    for (const auto& output : outputs->value.GetArray()) {
      auto name = output.FindMember("name");
      if (name == output.MemberEnd() || !name->value.IsString()) return error(errc::invalid_argument, "every output needs a \"name\"");
      const std::string wanted = name->value.GetString();
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
  }
  return call;
}

/// The request id serving sees: the client's id when it is a number, else a hash of it.
std::uint64_t numeric_id(const std::string& id) {
  if (id.empty()) return 0;
  if (id.find_first_not_of("0123456789") == std::string::npos && id.size() < 20) return std::stoull(id);
  return XXH3_64bits(id.data(), id.size());
}

/// The V2 response body (JSON, then binary outputs) and the JSON header's length when
/// binary data follows it.
std::pair<std::string, std::size_t> infer_response(const infer_call& call, const predict_reply& reply, const std::string& model) {
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
    writer.String(call.id.c_str());
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
}  // namespace

namespace {
class session;
}

struct http_endpoint::implementation : std::enable_shared_from_this<implementation>, predict_listener {
  caf::actor_system& system;
  http_endpoint_options options;
  net::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  std::atomic<std::size_t> in_flight{0}, connections{0}, writing{0};
  std::atomic<std::uint64_t> responses{0};
  std::atomic<bool> stopping{false};
  int bound_port = 0;
  metrics::histogram* infer_latency = nullptr;
  std::mutex counters_mutex;
  std::map<unsigned, metrics::counter*> by_status;
  caf::actor bridge;
  /// Infer requests at serving, by ticket: who asked and what.
  std::mutex pending_mutex;
  std::uint64_t next_ticket = 0;
  struct pending_infer {
    std::shared_ptr<session> asked;
    std::shared_ptr<infer_call> call;
    std::shared_ptr<net::steady_timer> deadline;
  };
  std::unordered_map<std::uint64_t, pending_infer> pending;

  void answered(std::uint64_t ticket, predict_reply& reply) override;
  void failed(std::uint64_t ticket, std::uint64_t request_id, const caf::error& failure) override;
  pending_infer take(std::uint64_t ticket) {
    std::lock_guard<std::mutex> lock(pending_mutex);
    auto found = pending.find(ticket);
    if (found == pending.end()) return {};
    auto taken = std::move(found->second);
    pending.erase(found);
    return taken;
  }

  implementation(caf::actor_system& actor_system, const http_endpoint_options& settings) : system(actor_system), options(settings) {
    infer_latency = &metrics::registry::global().get_histogram("rml_http_infer_latency_seconds",
                                                               "Time from an infer request's arrival to its response being sent",
                                                               {{"model", options.model}});
  }

  void count(http::status status) {
    metrics::counter* counter;
    {
      std::lock_guard<std::mutex> lock(counters_mutex);
      auto& slot = by_status[unsigned(status)];
      if (!slot) {
        slot = &metrics::registry::global().get_counter("rml_http_requests_total", "HTTP requests answered, by status code",
                                                        {{"code", std::to_string(unsigned(status))}});
      }
      counter = slot;
    }
    counter->add();
    responses++;
  }

  void accept();
};

namespace {
class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket socket, std::shared_ptr<http_endpoint::implementation> server)
      : stream_(std::move(socket)), server_(std::move(server)) {}
  ~session() { server_->connections--; }

  void read() {
    parser_.emplace();
    parser_->body_limit(server_->options.body_bytes_max);
    stream_.expires_after(idle_timeout);
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code failure, std::size_t) { self->on_read(failure); });
  }

 private:
  using request_type = http::request<http::string_body>;

  void on_read(beast::error_code failure) {
    if (failure == http::error::end_of_stream || failure == beast::error::timeout || failure == net::error::operation_aborted ||
        failure == net::error::connection_reset || failure == net::error::eof) {
      return close();
    }
    if (failure == http::error::body_limit) {
      keep_alive_ = false;
      return send_error(http::status::payload_too_large,
                        "request body exceeds the limit of " + std::to_string(server_->options.body_bytes_max) + " bytes", 11);
    }
    if (failure) {
      keep_alive_ = false;
      return send_error(http::status::bad_request, "malformed HTTP request: " + failure.message(), 11);
    }
    request_ = parser_->release();
    keep_alive_ = request_.keep_alive();
    version_ = request_.version();
    started_ = std::chrono::steady_clock::now();
    handle();
  }

  void handle() {
    const auto parts = segments_of(std::string_view(request_.target().data(), request_.target().size()));
    const auto method = request_.method();
    auto only = [&](http::verb allowed) {
      if (method == allowed) return true;
      send_error(http::status::method_not_allowed, std::string(request_.method_string()) + " " + std::string(request_.target()) +
                                                       ": use " + std::string(http::to_string(allowed)));
      return false;
    };
    if (parts.size() == 1 && parts[0] == "metrics") {
      if (!only(http::verb::get)) return;
      return send(http::status::ok, metrics::registry::global().render(), "text/plain; version=0.0.4; charset=utf-8");
    }
    if (parts.size() == 1 && parts[0] == "trace") {
      if (!only(http::verb::get)) return;
      std::string lines;
      for (const auto& event : trace_log::global().recent(trace_log::ring_events_max)) lines += to_json_line(event) + "\n";
      return send(http::status::ok, std::move(lines), "application/x-ndjson");
    }
    if (parts.empty() || parts[0] != "v2") return send_error(http::status::not_found, "no such path: " + std::string(request_.target()));
    if (parts.size() == 1) {
      if (!only(http::verb::get)) return;
      return send(http::status::ok,
                  std::string("{\"name\":\"") + server_name + "\",\"version\":\"" + server_version +
                      "\",\"extensions\":[\"binary_tensor_data\",\"rml_feedback\",\"rml_metrics\"]}",
                  "application/json");
    }
    if (parts.size() == 3 && parts[1] == "health" && parts[2] == "live") {
      if (!only(http::verb::get)) return;
      return send(http::status::ok, "{\"live\":true}", "application/json");
    }
    if (parts.size() == 3 && parts[1] == "health" && parts[2] == "ready") {
      if (!only(http::verb::get)) return;
      return with_info([self = shared_from_this()](const serving_info& info) {
        self->send(info.ready ? http::status::ok : http::status::service_unavailable,
                   std::string("{\"ready\":") + (info.ready ? "true" : "false") + "}", "application/json");
      });
    }
    if (parts.size() >= 3 && parts[1] == "models") {
      const std::string model(parts[2]);
      if (model != server_->options.model) {
        return send_error(http::status::not_found, "model '" + model + "' is not served here (this server serves '" + server_->options.model + "')");
      }
      std::size_t next = 3;
      std::uint64_t version = 0;
      if (parts.size() >= 5 && parts[3] == "versions") {
        const std::string text(parts[4]);
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 19 || std::stoull(text) == 0) {
          return send_error(http::status::bad_request, "model version '" + text + "' is not a version number ≥ 1");
        }
        version = std::stoull(text);
        next = 5;
      }
      const std::string_view action = parts.size() > next ? parts[next] : std::string_view{};
      if (parts.size() > next + 1) return send_error(http::status::not_found, "no such path: " + std::string(request_.target()));
      if (action.empty()) {
        if (!only(http::verb::get)) return;
        return with_info([self = shared_from_this()](const serving_info& info) { self->send_metadata(info); });
      }
      if (action == "ready") {
        if (!only(http::verb::get)) return;
        return with_info([self = shared_from_this(), version](const serving_info& info) {
          const bool loaded = version == 0 ? info.ready
                                           : info.ready && std::find(info.loaded_versions.begin(), info.loaded_versions.end(), version) !=
                                                               info.loaded_versions.end();
          self->send(loaded ? http::status::ok : http::status::service_unavailable,
                     std::string("{\"name\":\"") + self->server_->options.model + "\",\"ready\":" + (loaded ? "true" : "false") + "}",
                     "application/json");
        });
      }
      if (action == "infer") {
        if (!only(http::verb::post)) return;
        return infer(version);
      }
      if (action == "feedback") {
        if (!only(http::verb::post)) return;
        return feedback();
      }
      if (action == "policy") {
        if (!only(http::verb::post)) return;
        return set_policy();
      }
      if (action == "batching") {
        if (!only(http::verb::post)) return;
        return set_batching();
      }
    }
    send_error(http::status::not_found, "no such path: " + std::string(request_.target()));
  }

  caf::actor target() { return server_->system.registry().get<caf::actor>(server_->options.target); }

  template <class Then>
  void with_info(Then then) {
    auto serving = target();
    if (!serving) return send_error(http::status::service_unavailable, "serving is not running");
    auto self = shared_from_this();
    ask_from_outside<serving_info>(
        server_->system, serving, std::chrono::seconds(5), info_atom::value,
        [then](serving_info& info) mutable { then(info); },
        [self](caf::error& failure) { self->send_error(http::status::service_unavailable, "serving did not answer: " + describe(failure)); });
  }

  void send_metadata(const serving_info& info) {
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
    send(http::status::ok, std::string(buffer.GetString(), buffer.GetSize()), "application/json");
  }

  void infer(std::uint64_t version) {
    auto parsed = parse_infer(request_, server_->options.features);
    if (!parsed) return send_error(status_of(parsed.error().code()), "model '" + server_->options.model + "': " + parsed.error().message());
    auto serving = target();
    if (!serving) return send_error(http::status::service_unavailable, "serving is not running");
    if (server_->in_flight.fetch_add(1) >= server_->options.in_flight_max) {
      server_->in_flight--;
      return send_error(http::status::service_unavailable,
                        "overloaded: more than " + std::to_string(server_->options.in_flight_max) + " requests in flight");
    }
    auto call = std::make_shared<infer_call>(std::move(parsed.value()));
    call->request.request_id = numeric_id(call->id);
    call->request.model_version = version;
    const auto timeout = call->timeout_us > 0 ? std::chrono::microseconds(call->timeout_us)
                                              : std::chrono::duration_cast<std::chrono::microseconds>(server_->options.default_timeout);
    call->request.deadline_us =
        std::chrono::duration_cast<std::chrono::microseconds>(server_->system.clock().now().time_since_epoch() + timeout).count();
    // Serving answers by the deadline; should it hang, the timer answers 504 a grace period
    // later (and serving's late answer is dropped).
    auto deadline = std::make_shared<net::steady_timer>(stream_.get_executor(), timeout + std::chrono::milliseconds(50));
    std::uint64_t ticket;
    {
      std::lock_guard<std::mutex> lock(server_->pending_mutex);
      ticket = ++server_->next_ticket;
      server_->pending.emplace(ticket, http_endpoint::implementation::pending_infer{shared_from_this(), call, deadline});
    }
    const std::uint64_t request_id = call->request.request_id;
    deadline->async_wait([server = server_, ticket, request_id](beast::error_code failure) {
      if (failure) return;  // cancelled: answered in time
      auto entry = server->take(ticket);
      if (entry.asked) {
        entry.asked->infer_failed(make_error(errc::deadline_exceeded, "request " + std::to_string(request_id) + ": no answer by its deadline"));
      }
    });
    caf::anon_send(server_->bridge, ticket, std::move(call->request));
  }

 public:
  void infer_answered(const infer_call& call, const predict_reply& reply) {
    auto [body, json_bytes] = infer_response(call, reply, server_->options.model);
    send(http::status::ok, std::move(body), json_bytes ? "application/octet-stream" : "application/json", json_bytes);
  }
  void infer_failed(const caf::error& failure) {
    const auto code = failure == caf::sec::request_timeout ? errc::deadline_exceeded : client_code(failure);
    send_error(status_of(code), describe(failure));
  }

 private:
  void feedback() {
    rapidjson::Document document;
    document.Parse(request_.body().data(), request_.body().size());
    if (document.HasParseError() || !document.IsObject()) return send_error(http::status::bad_request, "feedback body must be a JSON object");
    auto id = document.FindMember("id");
    auto label = document.FindMember("label");
    if (id == document.MemberEnd() || !(id->value.IsString() || id->value.IsUint64())) {
      return send_error(http::status::bad_request, "feedback needs \"id\": the id of the infer request");
    }
    if (label == document.MemberEnd() || !label->value.IsInt() || label->value.GetInt() < 0) {
      return send_error(http::status::bad_request, "feedback needs \"label\": the true class, an integer ≥ 0");
    }
    prediction_feedback message{id->value.IsString() ? numeric_id(id->value.GetString()) : id->value.GetUint64(), label->value.GetInt()};
    auto serving = target();
    if (!serving) return send_error(http::status::service_unavailable, "serving is not running");
    auto self = shared_from_this();
    ask_from_outside<bool>(
        server_->system, serving, std::chrono::seconds(5), message,
        [self](bool matched) { self->send(http::status::ok, std::string("{\"matched\":") + (matched ? "true" : "false") + "}", "application/json"); },
        [self](caf::error& failure) { self->send_error(http::status::service_unavailable, describe(failure)); });
  }

  /// rml extension: {"policy": "canary:10"} sets serving's version policy.
  void set_policy() {
    rapidjson::Document document;
    document.Parse(request_.body().data(), request_.body().size());
    if (document.HasParseError() || !document.IsObject() || !document.HasMember("policy") || !document["policy"].IsString()) {
      return send_error(http::status::bad_request, "policy body must be {\"policy\": \"latest | pinned:V | canary:P | shadow | bandit:V1,V2\"}");
    }
    auto serving = target();
    if (!serving) return send_error(http::status::service_unavailable, "serving is not running");
    auto self = shared_from_this();
    ask_from_outside<std::string>(
        server_->system, serving, std::chrono::seconds(5), caf::make_message(policy_atom::value, std::string(document["policy"].GetString())),
        [self](std::string& policy) { self->send(http::status::ok, "{\"policy\":\"" + policy + "\"}", "application/json"); },
        [self](caf::error& failure) { self->send_error(status_of(client_code(failure)), describe(failure)); });
  }

  /// rml extension: changes batching at run time; fields left out keep their values.
  void set_batching() {
    auto document = std::make_shared<rapidjson::Document>();
    document->Parse(request_.body().data(), request_.body().size());
    if (document->HasParseError() || !document->IsObject()) return send_error(http::status::bad_request, "batching body must be a JSON object");
    with_info([self = shared_from_this(), document](const serving_info& info) {
      batching_settings settings = info.batching;
      for (const auto& field : document->GetObject()) {
        const std::string name = field.name.GetString();
        const auto& value = field.value;
        std::string wanted;  // what the value should have been, when it was not
        auto at_least = [&](auto& target, std::int64_t low) {
          if (!value.IsInt64() || value.GetInt64() < low) {
            wanted = "an integer ≥ " + std::to_string(low);
            return;
          }
          target = static_cast<std::remove_reference_t<decltype(target)>>(value.GetInt64());
        };
        if (name == "batch_rows_max") at_least(settings.batch_rows_max, 1);
        else if (name == "queue_delay_max_us") at_least(settings.queue_delay_max_us, 0);
        else if (name == "latency_objective_us") at_least(settings.latency_objective_us, 1);
        else if (name == "queue_requests_max") at_least(settings.queue_requests_max, 1);
        else if (name == "adaptive") value.IsBool() ? void(settings.adaptive = value.GetBool()) : void(wanted = "true or false");
        else {
          return self->send_error(http::status::bad_request, "unknown batching setting '" + name +
                                                                 "' (batch_rows_max, queue_delay_max_us, adaptive, latency_objective_us, "
                                                                 "queue_requests_max)");
        }
        if (!wanted.empty()) return self->send_error(http::status::bad_request, "batching setting '" + name + "' must be " + wanted);
      }
      if (auto serving = self->target()) caf::anon_send(serving, settings);
      char body[256];
      std::snprintf(body, sizeof(body),
                    "{\"batch_rows_max\":%u,\"queue_delay_max_us\":%lld,\"adaptive\":%s,\"latency_objective_us\":%lld,\"queue_requests_max\":%u}",
                    settings.batch_rows_max, (long long)settings.queue_delay_max_us, settings.adaptive ? "true" : "false",
                    (long long)settings.latency_objective_us, settings.queue_requests_max);
      self->send(http::status::ok, body, "application/json");
    });
  }

  void send_error(http::status status, const std::string& message, unsigned version = 0) {
    if (version) version_ = version;
    send(status, json_error(message), "application/json");
  }

  /// Any thread: the response is written on the connection's own executor.
  void send(http::status status, std::string body, const char* content_type, std::size_t json_header_bytes = 0) {
    auto out = std::make_shared<response>(status, version_);
    out->set(http::field::server, server_name);
    out->set(http::field::content_type, content_type);
    if (json_header_bytes) out->set("Inference-Header-Content-Length", std::to_string(json_header_bytes));
    out->keep_alive(keep_alive_);
    out->body() = std::move(body);
    out->prepare_payload();
    server_->writing++;
    net::post(stream_.get_executor(), [self = shared_from_this(), out, status] {
      self->server_->count(status);
      if (self->request_.target().find("/infer") != beast::string_view::npos) {
        self->server_->infer_latency->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - self->started_).count());
      }
      self->response_ = out;
      http::async_write(self->stream_, *out, [self](beast::error_code failure, std::size_t) {
        self->server_->writing--;
        if (failure || !self->keep_alive_ || self->server_->stopping) return self->close();
        self->read();
      });
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  request_type request_;
  std::shared_ptr<response> response_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<http_endpoint::implementation> server_;
};
}  // namespace

void http_endpoint::implementation::answered(std::uint64_t ticket, predict_reply& reply) {
  auto entry = take(ticket);
  if (entry.asked) {
    net::post(entry.deadline->get_executor(), [deadline = entry.deadline] { deadline->cancel(); });
    entry.asked->infer_answered(*entry.call, reply);
  }
  in_flight--;  // last: stop() may tear down once nothing is in flight
}

void http_endpoint::implementation::failed(std::uint64_t ticket, std::uint64_t, const caf::error& failure) {
  auto entry = take(ticket);
  if (entry.asked) {
    net::post(entry.deadline->get_executor(), [deadline = entry.deadline] { deadline->cancel(); });
    entry.asked->infer_failed(failure);
  }
  in_flight--;
}

void http_endpoint::implementation::accept() {
  // A connection's handlers need a strand only when several threads run the loop.
  const net::any_io_executor executor = options.threads > 1 ? net::any_io_executor(net::make_strand(io)) : net::any_io_executor(io.get_executor());
  acceptor.async_accept(executor, [self = shared_from_this()](beast::error_code failure, tcp::socket socket) {
    if (self->stopping) return;
    if (!failure) {
      if (self->connections.fetch_add(1) >= self->options.connections_max) {
        self->connections--;
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        std::make_shared<session>(std::move(socket), self)->read();
      }
    }
    self->accept();
  });
}

result<std::unique_ptr<http_endpoint>> http_endpoint::start(caf::actor_system& system, const http_endpoint_options& options) {
  auto self = std::make_shared<implementation>(system, options);
  const std::string where = options.host + ":" + std::to_string(options.port);
  beast::error_code failure;
  auto address = net::ip::make_address(options.host, failure);
  if (failure) return error(errc::invalid_argument, "HTTP address " + options.host + ": " + failure.message());
  tcp::endpoint endpoint{address, static_cast<unsigned short>(options.port)};
  self->acceptor.open(endpoint.protocol(), failure);
  if (!failure) self->acceptor.set_option(net::socket_base::reuse_address(true), failure);
  if (!failure) self->acceptor.bind(endpoint, failure);
  if (!failure) self->acceptor.listen(net::socket_base::max_listen_connections, failure);
  if (failure) return error(errc::io_error, "HTTP " + where + ": cannot listen: " + failure.message());
  self->bound_port = self->acceptor.local_endpoint().port();
  self->bridge = spawn_predict_bridge(system, self.get(), options.target);
  self->accept();
  for (int index = 0; index < std::max(1, options.threads); ++index) self->threads.emplace_back([raw = self.get()] { raw->io.run(); });
  return std::unique_ptr<http_endpoint>(new http_endpoint(std::move(self)));
}

http_endpoint::http_endpoint(std::shared_ptr<implementation> self) : self_(std::move(self)) {}

void http_endpoint::stop(std::chrono::milliseconds grace) {
  if (self_->threads.empty()) return;
  self_->stopping = true;
  net::post(self_->io, [self = self_] {
    beast::error_code ignored;
    self->acceptor.close(ignored);
  });
  const auto until = std::chrono::steady_clock::now() + grace;
  while (self_->in_flight.load() > 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // Let the last responses be written before the loop stops.
  while (self_->writing.load() > 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  self_->io.stop();
  for (auto& thread : self_->threads) thread.join();
  self_->threads.clear();
  caf::anon_send_exit(self_->bridge, caf::exit_reason::user_shutdown);
}

http_endpoint::~http_endpoint() { stop(); }

int http_endpoint::port() const { return self_->bound_port; }
std::uint64_t http_endpoint::answered() const { return self_->responses.load(); }
std::size_t http_endpoint::in_flight() const { return self_->in_flight.load(); }

}  // namespace rml::messaging

// The HTTP endpoint against real connections on loopback, with a stand-in for serving:
// KServe V2 conformance (paths, field names, shapes, datatypes FP32 / INT64 / FP64, the
// binary tensor data extension), error statuses with {"error": ...} bodies naming what was
// wrong, the body size limit, keep-alive and pipelined requests answered in order, and
// /metrics in Prometheus' text format.
#include <catch2/catch.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <caf/all.hpp>
#include <rapidjson/document.h>

#include <atomic>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <deque>
#include <functional>
#include <thread>

#include "messaging/errors.hpp"
#include "tests/serving_fakes.hpp"
#include "messaging/http_endpoint.hpp"
#include "messaging/messages.hpp"
#include "messaging/type_ids.hpp"

using namespace rml;
using namespace rml::messaging;
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {
constexpr std::uint32_t features = 4;

/// Answers a row with probabilities [0.1·first feature, 1 − that]; request 13 is refused
/// as bad input and 14 as overloaded; knows feedback for request 42 only.
/// The batching settings the fake serving was last sent.
batching_settings last_batching;
/// Predict requests the fake serving has received.
std::atomic<int> predicts_received{0};
/// Of those, the ones whose features were a view of the request body (binary FP32).
std::atomic<int> feature_views_received{0};

caf::behavior fake_serving(caf::event_based_actor* self) {
  auto slow = std::make_shared<std::deque<std::pair<caf::typed_response_promise<predict_reply>, predict_reply>>>();
  return {
      [self, slow](predict_request& request) -> caf::result<predict_reply> {
        predicts_received++;
        if (request.features.is_view()) feature_views_received++;
        if (request.request_id == 15) return self->make_response_promise<predict_reply>();  // hangs: never answers
        if (request.request_id == 16) {  // answers after 300 ms
          auto promise = self->make_response_promise<predict_reply>();
          slow->emplace_back(promise, predict_reply{16, 4, request.rows, 2, {std::vector<float>(request.rows * 2, 0.5f)},
                                                    std::vector<std::int32_t>(request.rows, 1)});
          self->delayed_send(self, std::chrono::milliseconds(300), caf::atom("slow"));
          return promise;
        }
        if (request.request_id == 13) return make_error(errc::invalid_argument, "request 13: unlucky");
        if (request.request_id == 14) return make_error(errc::overloaded, "request 14: queue full");
        predict_reply reply{request.request_id, request.model_version ? request.model_version : 4, request.rows, 2, {}, {}};
        for (std::uint32_t row = 0; row < request.rows; ++row) {
          const float first = request.features.at(row * features);
          reply.probabilities.values.push_back(0.1f * first);
          reply.probabilities.values.push_back(1 - 0.1f * first);
          reply.top_classes.push_back(first > 5 ? 0 : 1);
          if (request.top_k > 1) reply.top_classes.push_back(first > 5 ? 1 : 0);
        }
        return reply;
      },
      rml::test::answer_bursts_one_by_one(self),
      [](info_atom) {
        serving_info info;
        info.model = "mlp";
        info.ready = true;
        info.features = features;
        info.classes = 2;
        info.serving_version = 4;
        info.loaded_versions = {4};
        info.policy = "latest";
        return info;
      },
      [](prediction_feedback& feedback) { return feedback.request_id == 42; },
      [](policy_atom, std::string& policy) -> caf::result<std::string> {
        if (policy == "newest") return make_error(errc::invalid_argument, "version policy 'newest': unknown policy");
        return policy;
      },
      [](batching_settings& settings) { last_batching = settings; },
      [slow](caf::atom_value) {
        auto [promise, reply] = slow->front();
        slow->pop_front();
        promise.deliver(reply);
      },
  };
}

constexpr const char* control_key = "test-control-key";

/// Extra request headers: name, value.
using headers = std::vector<std::pair<std::string, std::string>>;
/// What the control routes need.
const headers control_headers = {{"Authorization", std::string("Bearer ") + control_key}, {"Content-Type", "application/json"}};

struct http_fixture {
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
  caf::actor serving;
  std::unique_ptr<http_endpoint> endpoint;
  net::io_context io;

  explicit http_fixture(const std::function<void(http_endpoint_options&)>& configure = {}) {
    config.set("logger.verbosity", caf::atom("quiet"));
    register_messaging(config);
    system = std::make_unique<caf::actor_system>(config);
    serving = system->spawn(fake_serving);
    system->registry().put(names::serving, serving);
    http_endpoint_options options;
    options.port = 0;
    options.model = "mlp";
    options.features = features;
    options.body_bytes_max = 4096;
    options.control_key = control_key;
    if (configure) configure(options);
    auto started = http_endpoint::start(*system, options);
    REQUIRE(started);
    endpoint = std::move(started.value());
  }
  ~http_fixture() {
    // Serving first: a request it never answered then fails, and the endpoint stops at once.
    caf::anon_send_exit(serving, caf::exit_reason::kill);
    endpoint.reset();
  }

  tcp::socket connect() {
    tcp::socket socket(io);
    socket.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(endpoint->port())});
    return socket;
  }

  static http::request<http::string_body> request_of(http::verb method, const std::string& target, const std::string& body,
                                                     const headers& extra) {
    http::request<http::string_body> request{method, target, 11};
    request.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : extra) request.set(name, value);
    request.body() = body;
    request.prepare_payload();
    return request;
  }

  http::response<http::string_body> call(http::verb method, const std::string& target, const std::string& body = "",
                                         const std::string& json_header_bytes = "", headers extra = {}) {
    auto socket = connect();
    if (!json_header_bytes.empty()) extra.emplace_back("Inference-Header-Content-Length", json_header_bytes);
    auto request = request_of(method, target, body, extra);
    http::write(socket, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(socket, buffer, response);
    return response;
  }

  /// A POST to a control route, with the key and the JSON content type.
  http::response<http::string_body> control(const std::string& target, const std::string& body) {
    return call(http::verb::post, target, body, "", control_headers);
  }
};

rapidjson::Document json_of(const std::string& text) {
  rapidjson::Document document;
  document.Parse(text.c_str());
  REQUIRE_FALSE(document.HasParseError());
  return document;
}

std::string infer_body(const std::string& id, const std::string& datatype, const std::string& shape, const std::string& data,
                       const std::string& extra = "") {
  return "{\"id\":\"" + id + "\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"" + datatype + "\",\"shape\":" + shape +
         ",\"data\":" + data + "}]" + extra + "}";
}
}  // namespace

TEST_CASE("health, server metadata and model metadata follow KServe V2") {
  http_fixture f;
  auto live = f.call(http::verb::get, "/v2/health/live");
  REQUIRE(live.result() == http::status::ok);
  REQUIRE(f.call(http::verb::get, "/v2/health/ready").result() == http::status::ok);
  auto server = json_of(f.call(http::verb::get, "/v2").body());
  REQUIRE(std::string(server["name"].GetString()) == "rml");
  REQUIRE(server["extensions"].IsArray());
  auto model = json_of(f.call(http::verb::get, "/v2/models/mlp").body());
  REQUIRE(std::string(model["name"].GetString()) == "mlp");
  REQUIRE(std::string(model["versions"][0].GetString()) == "4");
  REQUIRE(std::string(model["inputs"][0]["datatype"].GetString()) == "FP32");
  REQUIRE(model["inputs"][0]["shape"][1].GetInt() == 4);
  REQUIRE(std::string(model["outputs"][0]["name"].GetString()) == "probabilities");
  REQUIRE(model["outputs"][0]["shape"][1].GetInt() == 2);
  REQUIRE(f.call(http::verb::get, "/v2/models/mlp/ready").result() == http::status::ok);
  REQUIRE(f.call(http::verb::get, "/v2/models/mlp/versions/4/ready").result() == http::status::ok);
  REQUIRE(f.call(http::verb::get, "/v2/models/mlp/versions/5/ready").result() == http::status::service_unavailable);
}

TEST_CASE("infer answers FP32, INT64 and FP64 inputs with V2 outputs, versions from the path") {
  http_fixture f;
  auto response = f.call(http::verb::post, "/v2/models/mlp/infer",
                         infer_body("a1", "FP32", "[2,4]", "[[8,0,0,0],[2,0,0,0]]", ",\"parameters\":{\"top_k\":2}"));
  REQUIRE(response.result() == http::status::ok);
  auto body = json_of(response.body());
  REQUIRE(std::string(body["model_name"].GetString()) == "mlp");
  REQUIRE(std::string(body["model_version"].GetString()) == "4");
  REQUIRE(std::string(body["id"].GetString()) == "a1");
  const auto& probabilities = body["outputs"][0];
  REQUIRE(std::string(probabilities["name"].GetString()) == "probabilities");
  REQUIRE(std::string(probabilities["datatype"].GetString()) == "FP32");
  REQUIRE(probabilities["shape"][0].GetInt() == 2);
  REQUIRE(probabilities["shape"][1].GetInt() == 2);
  REQUIRE(probabilities["data"][0].GetDouble() == Approx(0.8));
  REQUIRE(probabilities["data"][2].GetDouble() == Approx(0.2));
  const auto& classes = body["outputs"][1];
  REQUIRE(std::string(classes["datatype"].GetString()) == "INT64");
  REQUIRE(classes["shape"][1].GetInt() == 2);
  REQUIRE(classes["data"][0].GetInt64() == 0);
  REQUIRE(classes["data"][2].GetInt64() == 1);

  auto integers = json_of(f.call(http::verb::post, "/v2/models/mlp/versions/7/infer", infer_body("2", "INT64", "[4]", "[9,1,2,3]")).body());
  REQUIRE(std::string(integers["model_version"].GetString()) == "7");
  REQUIRE(integers["outputs"][0]["data"][0].GetDouble() == Approx(0.9));
  auto doubles = f.call(http::verb::post, "/v2/models/mlp/infer", infer_body("3", "FP64", "[1,4]", "[1.5,0,0,0]"));
  REQUIRE(doubles.result() == http::status::ok);
  // Only the outputs asked for.
  auto only = json_of(f.call(http::verb::post, "/v2/models/mlp/infer",
                             infer_body("4", "FP32", "[4]", "[1,0,0,0]", ",\"outputs\":[{\"name\":\"classes\"}]")).body());
  REQUIRE(only["outputs"].Size() == 1);
  REQUIRE(std::string(only["outputs"][0]["name"].GetString()) == "classes");
}

TEST_CASE("the binary tensor data extension carries inputs and outputs as raw bytes") {
  http_fixture f;
  const std::string header =
      "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"parameters\":{\"binary_data_size\":16}}],"
      "\"outputs\":[{\"name\":\"probabilities\",\"parameters\":{\"binary_data\":true}}]}";
  const float values[4] = {6, 0, 0, 0};
  std::string body = header;
  body.append(reinterpret_cast<const char*>(values), sizeof(values));
  const int views_before = feature_views_received.load();
  auto response = f.call(http::verb::post, "/v2/models/mlp/infer", body, std::to_string(header.size()));
  REQUIRE(response.result() == http::status::ok);
  // The features reached serving as a view of the body (unaligned here: the JSON is
  // header.size() bytes), not a copy.
  REQUIRE(feature_views_received.load() == views_before + 1);
  const std::size_t json_bytes = std::stoul(std::string(response["Inference-Header-Content-Length"]));
  auto json = json_of(response.body().substr(0, json_bytes));
  REQUIRE(json["outputs"][0]["parameters"]["binary_data_size"].GetInt() == 8);
  REQUIRE(response.body().size() == json_bytes + 8);
  float probabilities[2];
  std::memcpy(probabilities, response.body().data() + json_bytes, 8);
  REQUIRE(probabilities[0] == Approx(0.6f));
  REQUIRE(probabilities[1] == Approx(0.4f));
}

TEST_CASE("errors are HTTP statuses with bodies that name what was wrong") {
  http_fixture f;
  auto check = [&](http::verb method, const std::string& target, const std::string& body, http::status status, const std::string& message) {
    auto response = f.call(method, target, body);
    CAPTURE(target, body, response.body());
    REQUIRE(response.result() == status);
    auto error = json_of(response.body());
    REQUIRE(std::string(error["error"].GetString()) == message);
  };
  check(http::verb::post, "/v2/models/mlp/infer", "{\"inputs\":", http::status::bad_request,
        "model 'mlp': request body is not valid JSON at byte 10: Invalid value.");
  check(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "FP32", "[1,5]", "[1,2,3,4,5]"), http::status::bad_request,
        "model 'mlp': inputs[0].shape ends in 5, the model takes 4 features");
  check(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "FP32", "[2,4]", "[1,2,3,4]"), http::status::bad_request,
        "model 'mlp': inputs[0].data has 4 elements, the shape asks for 8");
  check(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "BYTES", "[4]", "[1,2,3,4]"), http::status::bad_request,
        "model 'mlp': inputs[0].datatype BYTES is not supported (FP32, FP64, INT64, INT32, UINT8)");
  check(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "INT64", "[4]", "[1.5,2,3,4]"), http::status::bad_request,
        "model 'mlp': inputs[0].data must hold integers (datatype INT64)");
  check(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "FP32", "[4]", "[1,2,3,4]", ",\"outputs\":[{\"name\":\"logits\"}]"),
        http::status::not_found, "model 'mlp': output 'logits' does not exist (probabilities, classes)");
  check(http::verb::post, "/v2/models/resnet/infer", "{}", http::status::not_found, "model 'resnet' is not served here (this server serves 'mlp')");
  check(http::verb::post, "/v2/models/mlp/versions/x1/infer", "{}", http::status::bad_request, "model version 'x1' is not a version number ≥ 1");
  check(http::verb::get, "/v2/models/mlp/infer", "", http::status::method_not_allowed, "GET /v2/models/mlp/infer: use POST");
  check(http::verb::get, "/nowhere", "", http::status::not_found, "no such path: /nowhere");
  check(http::verb::post, "/v2/models/mlp/infer", infer_body("13", "FP32", "[4]", "[1,2,3,4]"), http::status::bad_request, "request 13: unlucky");
  check(http::verb::post, "/v2/models/mlp/infer", infer_body("14", "FP32", "[4]", "[1,2,3,4]"), http::status::service_unavailable,
        "request 14: queue full");
  check(http::verb::post, "/v2/models/mlp/infer", std::string(5000, ' '), http::status::payload_too_large,
        "request body exceeds the limit of 4096 bytes");
  // The endpoint still serves after all of that.
  REQUIRE(f.call(http::verb::get, "/v2/health/live").result() == http::status::ok);
}

TEST_CASE("a kept-alive connection answers pipelined requests in order") {
  http_fixture f;
  auto socket = f.connect();
  std::string pipelined;
  for (int id = 1; id <= 5; ++id) {
    const std::string body = infer_body(std::to_string(100 + id), "FP32", "[4]", "[" + std::to_string(id) + ",0,0,0]");
    pipelined += "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  net::write(socket, net::buffer(pipelined));
  beast::flat_buffer buffer;
  for (int id = 1; id <= 5; ++id) {
    http::response<http::string_body> response;
    http::read(socket, buffer, response);
    REQUIRE(response.result() == http::status::ok);
    REQUIRE(response.keep_alive());
    auto body = json_of(response.body());
    REQUIRE(std::string(body["id"].GetString()) == std::to_string(100 + id));
  }
}

TEST_CASE("feedback reaches serving, /metrics and /trace render the node's telemetry handed in") {
  telemetry node;
  node.metrics->get_counter("rml_node_total", "A series of this node's registry").add(5);
  node.trace->record({1, "node/test", "marked", "only in this node's trace"});
  http_fixture f([&node](http_endpoint_options& options) { options.telemetry = node; });
  auto matched = json_of(f.control("/v2/models/mlp/feedback", "{\"id\":\"42\",\"label\":3}").body());
  REQUIRE(matched["matched"].GetBool());
  auto unmatched = json_of(f.control("/v2/models/mlp/feedback", "{\"id\":\"43\",\"label\":3}").body());
  REQUIRE_FALSE(unmatched["matched"].GetBool());
  REQUIRE(f.control("/v2/models/mlp/feedback", "{\"id\":\"43\"}").result() == http::status::bad_request);
  auto metrics = f.call(http::verb::get, "/metrics");
  REQUIRE(metrics.result() == http::status::ok);
  REQUIRE(std::string(metrics[http::field::content_type]) == "text/plain; version=0.0.4; charset=utf-8");
  REQUIRE(metrics.body().find("# TYPE rml_http_requests_total counter\n") != std::string::npos);
  REQUIRE(metrics.body().find("rml_http_requests_total{code=\"200\"}") != std::string::npos);
  REQUIRE(metrics.body().find("rml_node_total 5\n") != std::string::npos);
  REQUIRE(node.metrics->render().find("rml_http_requests_total{code=\"200\"}") != std::string::npos);
  auto trace = f.call(http::verb::get, "/trace");
  REQUIRE(trace.body().find("\"kind\":\"marked\"") != std::string::npos);
  // Another node in the same process sees none of it.
  REQUIRE(telemetry{}.metrics->render().find("rml_node_total") == std::string::npos);
}

TEST_CASE("the version policy and batching change at run time over HTTP") {
  http_fixture f;
  auto policy = f.control("/v2/models/mlp/policy", "{\"policy\":\"canary:10\"}");
  REQUIRE(policy.result() == http::status::ok);
  REQUIRE(std::string(json_of(policy.body())["policy"].GetString()) == "canary:10");
  auto refused = f.control("/v2/models/mlp/policy", "{\"policy\":\"newest\"}");
  REQUIRE(refused.result() == http::status::bad_request);
  REQUIRE(std::string(json_of(refused.body())["error"].GetString()) == "version policy 'newest': unknown policy");
  auto batching = f.control("/v2/models/mlp/batching", "{\"batch_rows_max\":128,\"adaptive\":true}");
  REQUIRE(batching.result() == http::status::ok);
  auto settings = json_of(batching.body());
  REQUIRE(settings["batch_rows_max"].GetInt() == 128);
  REQUIRE(settings["adaptive"].GetBool());
  REQUIRE(settings["queue_delay_max_us"].GetInt() == 0);  // left as it was
  for (int attempt = 0; attempt < 100 && last_batching.batch_rows_max != 128; ++attempt) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(last_batching.batch_rows_max == 128);
  REQUIRE(last_batching.adaptive);
  auto unknown = f.control("/v2/models/mlp/batching", "{\"batch_size\":3}");
  REQUIRE(std::string(json_of(unknown.body())["error"].GetString()) == "unknown batching setting 'batch_size' (batch_rows_max, queue_delay_max_us, adaptive, latency_objective_us, queue_requests_max)");
  auto invalid = f.control("/v2/models/mlp/batching", "{\"batch_rows_max\":0}");
  REQUIRE(std::string(json_of(invalid.body())["error"].GetString()) == "batching setting 'batch_rows_max' must be an integer in [1, 1048576]");
}

TEST_CASE("a request serving never answers gets 504 at its deadline") {
  http_fixture f;
  const auto sent = std::chrono::steady_clock::now();
  auto response = f.call(http::verb::post, "/v2/models/mlp/infer", infer_body("15", "FP32", "[4]", "[1,2,3,4]", ",\"parameters\":{\"timeout\":100000}"));
  REQUIRE(response.result() == http::status::gateway_timeout);
  REQUIRE(std::string(json_of(response.body())["error"].GetString()) == "request 15: no answer by its deadline");
  REQUIRE(std::chrono::steady_clock::now() - sent < std::chrono::seconds(1));
}

TEST_CASE("deadlines are kept per request: a short one behind a long one still gets its 504 in time") {
  http_fixture f;
  // A hanging request with a 5 s timeout is pending when one with 100 ms comes.
  auto patient = f.connect();
  http::write(patient, f.request_of(http::verb::post, "/v2/models/mlp/infer",
                                    infer_body("15", "FP32", "[4]", "[1,2,3,4]", ",\"parameters\":{\"timeout\":5000000}"), {}));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto sent = std::chrono::steady_clock::now();
  auto hasty = f.call(http::verb::post, "/v2/models/mlp/infer", infer_body("15", "FP32", "[4]", "[1,2,3,4]", ",\"parameters\":{\"timeout\":100000}"));
  REQUIRE(hasty.result() == http::status::gateway_timeout);
  REQUIRE(std::chrono::steady_clock::now() - sent < std::chrono::seconds(1));
  // The endpoint keeps answering meanwhile.
  REQUIRE(f.call(http::verb::get, "/v2/health/live").result() == http::status::ok);
}

// Hostile and careless input (issue 9): none of it stops the endpoint, and every answer is
// valid JSON naming what was wrong.

TEST_CASE("a body of 200000 nested arrays is refused on every route, and the endpoint keeps serving") {
  http_fixture f([](http_endpoint_options& options) { options.body_bytes_max = 1 << 20; });
  const std::string nested = std::string(200'000, '[') + std::string(200'000, ']');
  for (const char* route : {"/v2/models/mlp/infer", "/v2/models/mlp/policy", "/v2/models/mlp/batching", "/v2/models/mlp/feedback"}) {
    auto response = f.call(http::verb::post, route, nested, "", control_headers);
    CAPTURE(route);
    REQUIRE(response.result() == http::status::bad_request);
    const std::string message = json_of(response.body())["error"].GetString();
    REQUIRE(message.find("nests arrays or objects deeper than 32 levels at byte 32") != std::string::npos);
  }
  REQUIRE(f.call(http::verb::get, "/v2/health/live").result() == http::status::ok);
}

TEST_CASE("text that is not UTF-8 is refused or replaced, never echoed into invalid JSON") {
  http_fixture f;
  auto bad_id = f.call(http::verb::post, "/v2/models/mlp/infer", infer_body("a\xff\xfe", "FP32", "[4]", "[1,0,0,0]"));
  REQUIRE(bad_id.result() == http::status::bad_request);
  REQUIRE(std::string(json_of(bad_id.body())["error"].GetString()).find("request body is not UTF-8") != std::string::npos);
  auto bad_type = f.call(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "FP\xc0\xb2", "[4]", "[1,0,0,0]"));
  REQUIRE(bad_type.result() == http::status::bad_request);
  json_of(bad_type.body());
  auto bad_model = f.call(http::verb::get, "/v2/models/ml\xe9p/ready");
  REQUIRE(bad_model.result() == http::status::not_found);
  REQUIRE(std::string(json_of(bad_model.body())["error"].GetString()) == "model 'ml\xef\xbf\xbdp' is not served here (this server serves 'mlp')");
}

TEST_CASE("metadata of a version that is not loaded is 404, like ready and infer") {
  http_fixture f;
  auto unknown = f.call(http::verb::get, "/v2/models/mlp/versions/999999");
  REQUIRE(unknown.result() == http::status::not_found);
  REQUIRE(std::string(json_of(unknown.body())["error"].GetString()) == "model 'mlp' version 999999 is not loaded (loaded: 4)");
  REQUIRE(f.call(http::verb::get, "/v2/models/mlp/versions/4").result() == http::status::ok);
}

TEST_CASE("control routes need the key and a JSON body, a server without a key refuses them") {
  http_fixture f;
  const std::string policy = "{\"policy\":\"pinned:4\"}";
  // What a web page can send without asking first: text/plain, no key.
  auto simple = f.call(http::verb::post, "/v2/models/mlp/policy", policy, "", {{"Content-Type", "text/plain"}, {"Origin", "http://evil.example"}});
  REQUIRE(simple.result() == http::status::unauthorized);
  REQUIRE(std::string(simple[http::field::www_authenticate]).rfind("Bearer", 0) == 0);
  auto wrong = f.call(http::verb::post, "/v2/models/mlp/batching", "{\"queue_requests_max\":1}", "",
                      {{"Authorization", "Bearer not-the-key"}, {"Content-Type", "application/json"}});
  REQUIRE(wrong.result() == http::status::unauthorized);
  auto plain = f.call(http::verb::post, "/v2/models/mlp/policy", policy, "", {{"Authorization", std::string("Bearer ") + control_key}, {"Content-Type", "text/plain"}});
  REQUIRE(plain.result() == http::status::unsupported_media_type);
  REQUIRE(f.control("/v2/models/mlp/policy", policy).result() == http::status::ok);
  REQUIRE(f.call(http::verb::post, "/v2/models/mlp/feedback", "{\"id\":\"42\",\"label\":3}").result() == http::status::unauthorized);

  http_fixture keyless([](http_endpoint_options& options) { options.control_key.clear(); });
  auto off = keyless.control("/v2/models/mlp/policy", policy);
  REQUIRE(off.result() == http::status::forbidden);
  REQUIRE(std::string(json_of(off.body())["error"].GetString()) == "control endpoints are off: this server was started without a control key");
  // Inference stays open, whatever the content type (`curl -d` sends a form's).
  REQUIRE(keyless.call(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "FP32", "[4]", "[1,0,0,0]")).result() == http::status::ok);
  auto form = keyless.call(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "FP32", "[4]", "[1,0,0,0]"), "",
                           {{"Content-Type", "application/x-www-form-urlencoded"}});
  REQUIRE(form.result() == http::status::ok);
}

TEST_CASE("with an inference token, infer needs it") {
  http_fixture f([](http_endpoint_options& options) { options.infer_token = "t0ken"; });
  const std::string body = infer_body("1", "FP32", "[4]", "[1,0,0,0]");
  REQUIRE(f.call(http::verb::post, "/v2/models/mlp/infer", body).result() == http::status::unauthorized);
  REQUIRE(f.call(http::verb::post, "/v2/models/mlp/infer", body, "", {{"Authorization", "Bearer t0ke"}}).result() == http::status::unauthorized);
  REQUIRE(f.call(http::verb::post, "/v2/models/mlp/infer", body, "", {{"Authorization", "bearer t0ken"}}).result() == http::status::ok);
  REQUIRE(f.call(http::verb::get, "/v2/health/ready").result() == http::status::ok);  // health stays open
}

TEST_CASE("non-finite or out-of-bound features are refused naming the row and feature") {
  http_fixture f([](http_endpoint_options& options) { options.feature_magnitude_max = 1000; });
  auto huge = f.call(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "FP32", "[2,4]", "[1,0,0,0,0,0,3e38,0]"));
  REQUIRE(huge.result() == http::status::bad_request);
  REQUIRE(std::string(json_of(huge.body())["error"].GetString()) == "model 'mlp': inputs[0]: row 1 feature 2 is 3e+38, beyond the bound of ±1000");
  auto overflow = f.call(http::verb::post, "/v2/models/mlp/infer", infer_body("1", "FP64", "[4]", "[1e300,0,0,0]"));
  REQUIRE(std::string(json_of(overflow.body())["error"].GetString()) == "model 'mlp': inputs[0]: row 0 feature 0 is infinite");
  const std::string header = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"parameters\":{\"binary_data_size\":16}}]}";
  const float values[4] = {0, NAN, 0, 0};
  std::string body = header;
  body.append(reinterpret_cast<const char*>(values), sizeof(values));
  auto nan = f.call(http::verb::post, "/v2/models/mlp/infer", body, std::to_string(header.size()));
  REQUIRE(std::string(json_of(nan.body())["error"].GetString()) == "model 'mlp': inputs[0]: row 0 feature 1 is NaN");
}

TEST_CASE("pipelined requests are read as one burst and reach serving together, answers keep their order") {
  http_fixture f;
  auto socket = f.connect();
  std::string pipelined;
  for (int id : {16, 101, 102, 103, 104}) {  // 16: serving takes 300 ms
    const std::string body = infer_body(std::to_string(id), "FP32", "[4]", "[1,0,0,0]");
    pipelined += "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  pipelined += "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  const int before = predicts_received.load();
  net::write(socket, net::buffer(pipelined));
  // Read one at a time, the second request would reach serving only after 16's answer, 300 ms on.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
  while (predicts_received.load() - before < 5 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(predicts_received.load() - before == 5);
  beast::flat_buffer buffer;
  std::vector<std::string> answered;
  for (int index = 0; index < 5; ++index) {
    http::response<http::string_body> response;
    http::read(socket, buffer, response);
    REQUIRE(response.result() == http::status::ok);
    answered.push_back(json_of(response.body())["id"].GetString());
  }
  REQUIRE(answered == std::vector<std::string>{"16", "101", "102", "103", "104"});
  http::response<http::string_body> live;
  http::read(socket, buffer, live);
  REQUIRE(live.body() == "{\"live\":true}");
  // The connection stays open for more.
  auto again = f.request_of(http::verb::get, "/v2/health/live", "", {});
  http::write(socket, again);
  http::read(socket, buffer, live);
  REQUIRE(live.result() == http::status::ok);
}

TEST_CASE("on stop, requests already pipelined on a connection are answered before it closes") {
  http_fixture f;
  auto socket = f.connect();
  std::string pipelined;
  for (int id : {16, 101, 102, 103}) {  // 16: serving takes 300 ms
    const std::string body = infer_body(std::to_string(id), "FP32", "[4]", "[1,0,0,0]");
    pipelined += "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  net::write(socket, net::buffer(pipelined));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // 16 is at serving
  std::thread stopping([&] { f.endpoint->stop(std::chrono::seconds(5)); });
  beast::flat_buffer buffer;
  std::vector<std::string> answered;
  for (int index = 0; index < 4; ++index) {
    http::response<http::string_body> response;
    beast::error_code failure;
    http::read(socket, buffer, response, failure);
    if (failure) break;
    auto body = json_of(response.body());
    if (body.HasMember("id")) answered.push_back(body["id"].GetString());
    else answered.push_back(body["error"].GetString());
  }
  stopping.join();
  REQUIRE(answered == std::vector<std::string>{"16", "101", "102", "103"});
}

TEST_CASE("a connection that does not deliver its request in time is closed, beyond the bound one is told why") {
  http_fixture f([](http_endpoint_options& options) {
    options.request_timeout = std::chrono::milliseconds(200);
    options.connections_max = 2;
  });
  auto slow = f.connect();
  net::write(slow, net::buffer(std::string("GET /v2/health/live HTTP/1.1\r\nHo")));
  auto second = f.connect();
  auto third = f.connect();  // over the bound
  beast::flat_buffer buffer;
  http::response<http::string_body> refused;
  http::read(third, buffer, refused);
  REQUIRE(refused.result() == http::status::service_unavailable);
  REQUIRE(std::string(json_of(refused.body())["error"].GetString()) == "too many connections: at most 2 are served at once");
  // The slow one is closed after its 200 ms, which frees its place.
  char byte;
  beast::error_code failure;
  slow.read_some(net::buffer(&byte, 1), failure);
  REQUIRE(failure == net::error::eof);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(f.call(http::verb::get, "/v2/health/live").result() == http::status::ok);
}

namespace {
/// A self-signed certificate and key for 127.0.0.1, made with the openssl command.
struct certificate_files {
  std::string directory, certificate, key;
  certificate_files() {
    char pattern[] = "/tmp/rml-tls-XXXXXX";
    directory = ::mkdtemp(pattern);
    certificate = directory + "/cert.pem";
    key = directory + "/key.pem";
    const std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 "
                                "-addext subjectAltName=IP:127.0.0.1 -keyout " + key + " -out " + certificate + " 2>/dev/null";
    REQUIRE(std::system(command.c_str()) == 0);
  }
  ~certificate_files() { std::filesystem::remove_all(directory); }
};
}  // namespace

TEST_CASE("with a certificate and key the endpoint speaks HTTPS, and refuses plain HTTP") {
  certificate_files files;
  http_fixture f([&](http_endpoint_options& options) {
    options.tls_certificate_file = files.certificate;
    options.tls_key_file = files.key;
  });
  net::ssl::context client_tls(net::ssl::context::tls_client);
  client_tls.load_verify_file(files.certificate);
  client_tls.set_verify_mode(net::ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(f.io, client_tls);
  beast::get_lowest_layer(stream).connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(f.endpoint->port())});
  stream.handshake(net::ssl::stream_base::client);
  for (int round = 0; round < 2; ++round) {  // kept alive over TLS
    auto request = http_fixture::request_of(http::verb::post, "/v2/models/mlp/infer", infer_body("9", "FP32", "[4]", "[8,0,0,0]"), {});
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    REQUIRE(response.result() == http::status::ok);
    REQUIRE(json_of(response.body())["outputs"][0]["data"][0].GetDouble() == Approx(0.8));
  }
  // Plain HTTP on the HTTPS port gets no HTTP answer.
  auto plain = f.connect();
  net::write(plain, net::buffer(std::string("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")));
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  beast::error_code failure;
  http::read(plain, buffer, response, failure);
  REQUIRE(failure);

  caf::actor_system_config config;
  caf::actor_system system{config};
  http_endpoint_options options;
  options.port = 0;
  options.tls_certificate_file = files.directory + "/missing.pem";
  options.tls_key_file = files.key;
  auto refused = http_endpoint::start(system, options);
  REQUIRE_FALSE(refused);
  REQUIRE(refused.error().message().rfind("TLS certificate " + files.directory + "/missing.pem: ", 0) == 0);
  options.tls_key_file.clear();
  REQUIRE(http_endpoint::start(system, options).error().message() == "HTTPS needs both a certificate (--tls-cert) and its private key (--tls-key)");
}

TEST_CASE("a client that expects 100-continue is told to go on before it sends the body") {
  http_fixture f;
  auto socket = f.connect();
  const std::string body = infer_body("5", "FP32", "[4]", "[3,0,0,0]");
  net::write(socket, net::buffer("POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n"
                                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
  beast::flat_buffer buffer;
  http::response<http::empty_body> interim;
  http::read(socket, buffer, interim);
  REQUIRE(interim.result() == http::status::continue_);
  net::write(socket, net::buffer(body));
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  REQUIRE(response.result() == http::status::ok);
  REQUIRE(json_of(response.body())["outputs"][0]["data"][0].GetDouble() == Approx(0.3));
}

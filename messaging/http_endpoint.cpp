#include "messaging/http_endpoint.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <caf/all.hpp>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <deque>
#include <map>
#include <optional>

#include "messaging/actor_bridge.hpp"
#include "messaging/dashboard.hpp"
#include "messaging/request_ledger.hpp"
#include "messaging/errors.hpp"
#include "messaging/json.hpp"
#include "messaging/messages.hpp"
#include "messaging/metrics_registry.hpp"
#include "messaging/trace.hpp"
#include "messaging/type_ids.hpp"
#include "messaging/v2_protocol.hpp"

namespace rml::messaging {
namespace {
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using response = http::response<http::string_body>;
using v2::route_kind;

constexpr const char* server_name = "rml";

http::status status_of(errc code) {
  switch (code) {
    case errc::invalid_argument:
    case errc::shape_mismatch:
    case errc::parse_error:
    case errc::truncated:
      return http::status::bad_request;
    case errc::unauthorized:
      return http::status::unauthorized;
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

/// Whether a header value names `type` (parameters such as "; charset=utf-8" allowed).
bool content_type_is(beast::string_view value, beast::string_view type) {
  if (value.size() < type.size() || !beast::iequals(value.substr(0, type.size()), type)) return false;
  return value.size() == type.size() || value[type.size()] == ';' || value[type.size()] == ' ';
}

/// Where an infer answer goes: the connection that asked (of either stream type).
class responder {
 public:
  virtual ~responder() = default;
  /// `exchange` names the request on its connection.
  virtual void infer_answered(std::uint64_t exchange, const v2::infer_call& call, const predict_reply& reply) = 0;
  virtual void infer_failed(std::uint64_t exchange, const caf::error& failure) = 0;
};

/// Where an infer answer goes: the connection, the exchange on it, and the call it answers.
struct infer_route {
  std::shared_ptr<responder> asked;
  std::uint64_t exchange = 0;
  std::shared_ptr<v2::infer_call> call;
};

template <class Stream>
class session;
}  // namespace

struct http_endpoint::implementation : std::enable_shared_from_this<implementation>, ledger_listener<infer_route> {
  caf::actor_system& system;
  http_endpoint_options options;
  /// Owned by the http_endpoint, not here: its pending handlers hold this object, and only
  /// the io_context's destruction (after this object's owner let go) releases them.
  net::io_context& io;
  /// Keeps the loop running while it has nothing to do: once the acceptor closes on stop,
  /// the last answers are posted from actor threads into a loop that must still be there.
  net::executor_work_guard<net::io_context::executor_type> keep_running = net::make_work_guard(io);
  tcp::acceptor acceptor{io};
  std::optional<net::ssl::context> tls;
  std::vector<std::thread> threads;
  /// Infer requests at serving; open connections; responses owed (a request read and not
  /// yet answered, or a pipelined request being read while stopping).
  std::atomic<std::size_t> in_flight{0}, connections{0}, busy{0};
  std::atomic<std::uint64_t> responses{0};
  std::atomic<bool> stopping{false};
  int bound_port = 0;
  metrics::histogram* infer_latency = nullptr;
  metrics::counter* connections_refused = nullptr;
  /// What a connection beyond the bound is told before it is closed.
  std::string connection_refusal;
  std::mutex counters_mutex;
  std::map<unsigned, metrics::counter*> by_status;
  /// The infer requests' ledger (messaging/request_ledger.hpp): it holds them at serving,
  /// keeps their deadlines (a 504 a grace after one passes, should serving hang) and hands
  /// their answers back here with their routes.
  caf::actor ledger;

  void answered(std::vector<routed_answer<infer_route>>& answers) override;
  /// Infer requests read and not yet handed to the ledger: the requests parsed in one turn
  /// of the event loop go as one burst (the first schedules the send behind the handlers
  /// queued).
  std::mutex burst_mutex;
  ledger_intake<infer_route> burst;
  void send_to_serving(infer_route route, predict_request request) {
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(burst_mutex);
      first = burst.requests.empty();
      burst.requests.push_back(std::move(request));
      burst.routes.push_back(std::move(route));
    }
    if (!first) return;
    net::post(io, [self = shared_from_this()] {
      ledger_intake<infer_route> ready;
      {
        std::lock_guard<std::mutex> lock(self->burst_mutex);
        std::swap(ready, self->burst);
      }
      caf::anon_send(self->ledger, std::move(ready));
    });
  }

  implementation(caf::actor_system& actor_system, const http_endpoint_options& settings, net::io_context& context)
      : system(actor_system), options(settings), io(context) {
    auto& registry = *options.telemetry.metrics;
    infer_latency = &registry.get_histogram("rml_http_infer_latency_seconds", "Time from an infer request's arrival to its response being sent",
                                            {{"model", options.model}});
    connections_refused = &registry.get_counter("rml_http_connections_refused_total", "Connections answered 503 beyond the connection bound", {});
    const std::string body = v2::error_json("too many connections: at most " + std::to_string(options.connections_max) + " are served at once");
    connection_refusal = "HTTP/1.1 503 Service Unavailable\r\nServer: rml\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  void count(http::status status) {
    metrics::counter* counter;
    {
      std::lock_guard<std::mutex> lock(counters_mutex);
      auto& slot = by_status[unsigned(status)];
      if (!slot) {
        slot = &options.telemetry.metrics->get_counter("rml_http_requests_total", "HTTP requests answered, by status code",
                                                        {{"code", std::to_string(unsigned(status))}});
      }
      counter = slot;
    }
    counter->add();
    responses++;
  }

  void accept();
  void refuse_connection(tcp::socket socket);
};

namespace {
template <class Stream>
class session : public responder, public std::enable_shared_from_this<session<Stream>> {
 public:
  static constexpr bool secure = !std::is_same_v<Stream, beast::tcp_stream>;

  template <class... StreamArguments>
  explicit session(std::shared_ptr<http_endpoint::implementation> server, StreamArguments&&... arguments)
      : stream_(std::forward<StreamArguments>(arguments)...), server_(std::move(server)) {}
  ~session() override { server_->connections--; }

  void start() {
    if constexpr (secure) {
      lowest().expires_after(server_->options.request_timeout);
      stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code failure) {
        if (!failure) self->pump();  // a failed handshake has no HTTP to answer
      });
    } else {
      pump();
    }
  }

  void infer_answered(std::uint64_t exchange, const v2::infer_call& call, const predict_reply& reply) override {
    auto [body, json_bytes] = v2::infer_response(call, reply, server_->options.model);
    send(exchange, http::status::ok, std::move(body), json_bytes ? "application/octet-stream" : "application/json", json_bytes);
  }

  void infer_failed(std::uint64_t exchange, const caf::error& failure) override {
    const auto code = failure == caf::sec::request_timeout ? errc::deadline_exceeded : client_code(failure);
    send_error(exchange, status_of(code), describe(failure));
  }

 private:
  /// A request read and its answer, kept in arrival order: HTTP/1.1 answers a connection's
  /// requests in the order they came, whatever order serving answers them in. An interim
  /// `100 Continue` owed before a request's body is one too.
  struct exchange {
    std::uint64_t id = 0;
    route_kind route = route_kind::live;
    std::chrono::steady_clock::time_point started;
    unsigned version = 11;
    bool keep_alive = true;
    bool interim = false;
    std::shared_ptr<response> out;  // set once answered
  };
  /// Requests read and not yet answered on one connection, at most; beyond, the rest of a
  /// pipelined burst waits in the buffer until answers are written.
  static constexpr std::size_t exchanges_max = 64;
  /// Answers written with one gathered write, at most.
  static constexpr std::size_t answers_per_write_max = 64;
  static constexpr std::size_t read_bytes = 64 * 1024;

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  exchange* find(std::uint64_t id) {
    for (auto& each : exchanges_) {
      if (each.id == id) return &each;
    }
    return nullptr;
  }

  exchange& open_exchange() {
    server_->busy++;  // an answer is owed
    exchanges_.push_back({});
    exchanges_.back().id = ++exchanges_opened_;
    exchanges_.back().started = std::chrono::steady_clock::now();
    return exchanges_.back();
  }

  /// Handles every complete request the buffer holds — a pipelining client's burst is parsed
  /// in one go, so its infer requests reach serving as one burst — and reads more while a
  /// request is incomplete or when nothing is owed (a kept-alive connection waiting for its
  /// next request). Parsed here with Beast's parser directly, not http::async_read, which
  /// takes one request per read operation.
  void pump() {
    while (!read_closed_ && exchanges_.size() < exchanges_max && buffer_.size() > 0) {
      if (!parser_) {
        parser_.emplace();
        parser_->body_limit(server_->options.body_bytes_max);
        parser_->eager(true);
      }
      beast::error_code failure;
      buffer_.consume(parser_->put(buffer_.data(), failure));
      if (failure == http::error::need_more) break;
      if (failure) {
        refuse_malformed(failure);
        break;
      }
      if (parser_->is_done()) take_request();
    }
    if (read_closed_ || dead_) return;
    const bool mid_request = parser_ && parser_->got_some();
    if (mid_request && parser_->is_header_done() && !continued_ && beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      // The client (curl, for bodies over 1 KB) waits for this before it sends the body.
      continued_ = true;
      auto& interim = open_exchange();
      server_->busy--;  // not an answer
      interim.interim = true;
      interim.out = std::make_shared<response>(http::status::continue_, parser_->get().version());
      write_ready();
    }
    if (reading_ || exchanges_.size() >= exchanges_max || (!mid_request && !exchanges_.empty())) return;
    if (server_->stopping && !mid_request) return close();  // idle while stopping
    reading_ = true;
    lowest().expires_after(server_->options.request_timeout);
    stream_.async_read_some(buffer_.prepare(read_bytes), [self = this->shared_from_this()](beast::error_code failure, std::size_t bytes) {
      self->reading_ = false;
      self->buffer_.commit(bytes);
      if (!failure) return self->pump();
      // The client went away, stalled beyond the request timeout or broke the connection:
      // nothing more is read; answers owed are written while the connection lasts.
      self->read_closed_ = true;
      if (self->exchanges_.empty()) self->close();
    });
  }

  void take_request() {
    request_ = parser_->release();
    parser_.reset();
    continued_ = false;
    auto& taken = open_exchange();
    taken.keep_alive = request_.keep_alive();
    taken.version = request_.version();
    if (!taken.keep_alive) read_closed_ = true;  // nothing after `Connection: close` is read
    current_ = taken.id;
    handle();
  }

  void refuse_malformed(beast::error_code failure) {
    read_closed_ = true;
    parser_.reset();
    auto& refused = open_exchange();
    refused.keep_alive = false;
    if (failure == http::error::body_limit) {
      return send_error(refused.id, http::status::payload_too_large,
                        "request body exceeds the limit of " + std::to_string(server_->options.body_bytes_max) + " bytes");
    }
    send_error(refused.id, http::status::bad_request, "malformed HTTP request: " + failure.message());
  }

  void handle() {
    const std::string_view target(request_.target().data(), request_.target().size());
    auto routed = v2::route_of(target, server_->options.model);
    if (!routed) return send_error(current_, status_of(routed.error().code()), routed.error().message());
    route_ = routed->kind;
    find(current_)->route = route_;
    const auto allowed = v2::takes_post(route_) ? http::verb::post : http::verb::get;
    if (request_.method() != allowed) {
      return send_error(current_, http::status::method_not_allowed,
                        std::string(request_.method_string()) + " " + std::string(target) + ": use " + std::string(http::to_string(allowed)),
                        {http::field::allow, std::string(http::to_string(allowed))});
    }
    if (!admitted()) return;
    const std::uint64_t version = routed->version;
    switch (route_) {
      case route_kind::metrics:
        return send(current_, http::status::ok, server_->options.telemetry.metrics->render(), "text/plain; version=0.0.4; charset=utf-8");
      case route_kind::trace: {
        std::string lines;
        for (const auto& event : server_->options.telemetry.trace->recent(trace_log::ring_events_max)) lines += to_json_line(event) + "\n";
        return send(current_, http::status::ok, std::move(lines), "application/x-ndjson");
      }
      case route_kind::dashboard:
        return send(current_, http::status::ok, dashboard_page(), "text/html; charset=utf-8");
      case route_kind::dashboard_script:
        if (const auto& script = dashboard_script()) return send(current_, http::status::ok, *script, "application/javascript");
        return send_error(current_, http::status::not_found, dashboard_script_missing);
      case route_kind::server_metadata:
        return send(current_, http::status::ok, v2::server_metadata_json(), "application/json");
      case route_kind::live:
        return send(current_, http::status::ok, "{\"live\":true}", "application/json");
      case route_kind::ready:
        return with_info([self = this->shared_from_this(), id = current_](const serving_info& info) {
          self->send(id, info.ready ? http::status::ok : http::status::service_unavailable,
                     std::string("{\"ready\":") + (info.ready ? "true" : "false") + "}", "application/json");
        });
      case route_kind::model_metadata:
        return with_info([self = this->shared_from_this(), id = current_, version](const serving_info& info) {
          if (version != 0 && !loaded(info, version)) return self->send_error(id, http::status::not_found, not_loaded(info, version));
          self->send(id, http::status::ok, v2::metadata_json(info), "application/json");
        });
      case route_kind::model_ready:
        return with_info([self = this->shared_from_this(), id = current_, version](const serving_info& info) {
          const bool ready = info.ready && (version == 0 || loaded(info, version));
          self->send(id, ready ? http::status::ok : http::status::service_unavailable,
                     std::string("{\"name\":\"") + self->server_->options.model + "\",\"ready\":" + (ready ? "true" : "false") + "}",
                     "application/json");
        });
      case route_kind::infer:
        return infer(version);
      case route_kind::feedback:
        return feedback();
      case route_kind::policy:
        return set_policy();
      case route_kind::batching:
        return set_batching();
    }
  }

  static bool loaded(const serving_info& info, std::uint64_t version) {
    return std::find(info.loaded_versions.begin(), info.loaded_versions.end(), version) != info.loaded_versions.end();
  }
  static std::string not_loaded(const serving_info& info, std::uint64_t version) {
    std::string versions;
    for (auto each : info.loaded_versions) versions += (versions.empty() ? "" : ", ") + std::to_string(each);
    return "model '" + info.model + "' version " + std::to_string(version) + " is not loaded (loaded: " + (versions.empty() ? "none" : versions) + ")";
  }

  /// The access rules of the route (header comment of http_endpoint.hpp); answers the
  /// refusal itself.
  bool admitted() {
    const auto& options = server_->options;
    const auto content_type = request_[http::field::content_type];
    if (v2::is_control(route_)) {
      if (options.control_key.empty()) {
        send_error(current_, http::status::forbidden, "control endpoints are off: this server was started without a control key");
        return false;
      }
      if (!bearer_is(options.control_key)) {
        send_error(current_, http::status::unauthorized, "this control endpoint needs the control key: Authorization: Bearer <key>",
                   {http::field::www_authenticate, "Bearer realm=\"rml-control\""});
        return false;
      }
      if (!content_type_is(content_type, "application/json")) {
        send_error(current_, http::status::unsupported_media_type, "Content-Type must be application/json, got '" + std::string(content_type) + "'");
        return false;
      }
    } else if (route_ == route_kind::infer) {
      if (!options.infer_token.empty() && !bearer_is(options.infer_token)) {
        send_error(current_, http::status::unauthorized, "inference needs the token: Authorization: Bearer <token>",
                   {http::field::www_authenticate, "Bearer realm=\"rml-infer\""});
        return false;
      }
      // Any content type: inference changes nothing (so a page that makes a browser send it
      // gains nothing it could not get by asking itself), and `curl -d` sends forms' type.
    }
    return true;
  }

  /// Whether the request carries `Authorization: Bearer <secret>` (compared in constant time).
  bool bearer_is(const std::string& secret) const {
    const auto value = request_[http::field::authorization];
    constexpr beast::string_view scheme = "Bearer ";
    if (value.size() != scheme.size() + secret.size() || !beast::iequals(value.substr(0, scheme.size()), scheme)) return false;
    return CRYPTO_memcmp(value.data() + scheme.size(), secret.data(), secret.size()) == 0;
  }

  caf::actor target() { return find_named(server_->system, server_->options.target); }

  template <class Then>
  void with_info(Then then) {
    auto serving = target();
    if (!serving) return send_error(current_, http::status::service_unavailable, "serving is not running");
    auto self = this->shared_from_this();
    const std::uint64_t id = current_;
    ask_from_outside<serving_info>(
        server_->system, serving, std::chrono::seconds(5), info_atom::value, [then](serving_info& info) mutable { then(info); },
        [self, id](caf::error& failure) { self->send_error(id, http::status::service_unavailable, "serving did not answer: " + describe(failure)); });
  }

  void infer(std::uint64_t version) {
    const auto header = request_.find("Inference-Header-Content-Length");
    const std::string header_text = header == request_.end() ? std::string() : std::string(header->value());
    const v2::input_limits limits{server_->options.features, 65'536, server_->options.feature_magnitude_max};
    // The body outlives this request's parse when its features are a view of it (binary FP32).
    auto body = std::make_shared<std::string>(std::move(request_.body()));
    auto parsed = v2::parse_infer(*body, header == request_.end() ? nullptr : &header_text, limits, body);
    if (!parsed) return send_error(current_, status_of(parsed.error().code()), "model '" + server_->options.model + "': " + parsed.error().message());
    // No look-up of serving here: the ledger finds it per burst, and on a cluster node waits
    // for one within the deadline (a name moving between nodes), else answers not_ready.
    if (server_->in_flight.fetch_add(1) >= server_->options.in_flight_max) {
      server_->in_flight--;
      return send_error(current_, http::status::service_unavailable,
                        "overloaded: more than " + std::to_string(server_->options.in_flight_max) + " requests in flight");
    }
    auto call = std::make_shared<v2::infer_call>(std::move(parsed.value()));
    call->request.request_id = v2::numeric_id(call->id);
    call->request.model_version = version;
    const auto timeout = call->timeout_us > 0 ? std::chrono::microseconds(call->timeout_us)
                                              : std::chrono::duration_cast<std::chrono::microseconds>(server_->options.default_timeout);
    call->request.deadline_us =
        std::chrono::duration_cast<std::chrono::microseconds>(server_->system.clock().now().time_since_epoch() + timeout).count();
    // Serving answers by the deadline; should it hang, the ledger answers 504 a grace period
    // later (and serving's late answer is dropped).
    auto request = std::move(call->request);
    server_->send_to_serving({this->shared_from_this(), current_, std::move(call)}, std::move(request));
  }

  void feedback() {
    auto parsed = v2::parse_feedback(request_.body());
    if (!parsed) return send_error(current_, status_of(parsed.error().code()), parsed.error().message());
    auto serving = target();
    if (!serving) return send_error(current_, http::status::service_unavailable, "serving is not running");
    auto self = this->shared_from_this();
    const std::uint64_t id = current_;
    ask_from_outside<bool>(
        server_->system, serving, std::chrono::seconds(5), *parsed,
        [self, id](bool matched) { self->send(id, http::status::ok, std::string("{\"matched\":") + (matched ? "true" : "false") + "}", "application/json"); },
        [self, id](caf::error& failure) { self->send_error(id, http::status::service_unavailable, describe(failure)); });
  }

  void set_policy() {
    auto parsed = v2::parse_policy(request_.body());
    if (!parsed) return send_error(current_, http::status::bad_request, parsed.error().message());
    auto serving = target();
    if (!serving) return send_error(current_, http::status::service_unavailable, "serving is not running");
    auto self = this->shared_from_this();
    const std::uint64_t id = current_;
    ask_from_outside<std::string>(
        server_->system, serving, std::chrono::seconds(5), caf::make_message(policy_atom::value, std::move(*parsed)),
        [self, id](std::string& policy) { self->send(id, http::status::ok, json::object_with("policy", policy), "application/json"); },
        [self, id](caf::error& failure) { self->send_error(id, status_of(client_code(failure)), describe(failure)); });
  }

  void set_batching() {
    auto change = v2::parse_batching(request_.body());
    if (!change) return send_error(current_, status_of(change.error().code()), change.error().message());
    with_info([self = this->shared_from_this(), id = current_, change = *change](const serving_info& info) {
      const batching_settings settings = change.applied_to(info.batching);
      if (auto serving = self->target()) caf::anon_send(serving, settings);
      self->send(id, http::status::ok, v2::batching_json(settings), "application/json");
    });
  }

  struct header_line {
    http::field name = http::field::unknown;
    std::string value;
  };

  void send_error(std::uint64_t exchange, http::status status, const std::string& message, header_line extra = {}) {
    send(exchange, status, v2::error_json(message), "application/json", 0, std::move(extra));
  }

  /// Any thread: the answer is made and written on the connection's own executor, after the
  /// answers to the requests before it.
  void send(std::uint64_t exchange, http::status status, std::string body, const char* content_type, std::size_t json_header_bytes = 0,
            header_line extra = {}) {
    net::post(stream_.get_executor(), [self = this->shared_from_this(), exchange, status, body = std::move(body), content_type, json_header_bytes,
                                       extra = std::move(extra)]() mutable {
      auto* answered = self->find(exchange);
      if (!answered || answered->out) return;  // the connection is gone, or answered already
      auto out = std::make_shared<response>(status, answered->version);
      out->set(http::field::server, server_name);
      out->set(http::field::content_type, content_type);
      if (json_header_bytes) out->set("Inference-Header-Content-Length", std::to_string(json_header_bytes));
      if (extra.name != http::field::unknown) out->set(extra.name, extra.value);
      out->keep_alive(answered->keep_alive);
      out->body() = std::move(body);
      out->prepare_payload();
      answered->out = std::move(out);
      auto& server = *self->server_;
      server.count(status);
      if (answered->route == route_kind::infer) {
        server.infer_latency->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - answered->started).count());
      }
      self->write_ready();
    });
  }

  /// The status line and fields of an answer as they go on the wire. Written here because
  /// Beast's serializer writes one message per operation, and answers are gathered.
  static std::string head_of(const response& out) {
    std::string head = out.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    head += std::to_string(out.result_int());
    head += ' ';
    const auto reason = out.reason();
    head.append(reason.data(), reason.size());
    head += "\r\n";
    for (const auto& field : out) {
      const auto name = field.name_string();
      const auto value = field.value();
      head.append(name.data(), name.size());
      head += ": ";
      head.append(value.data(), value.size());
      head += "\r\n";
    }
    head += "\r\n";
    return head;
  }

  /// Writes the answers ready at the front of the line, together in one write.
  void write_ready() {
    if (writing_ > 0 || dead_) return;
    heads_.clear();
    for (const auto& each : exchanges_) {
      if (!each.out || heads_.size() == answers_per_write_max) break;
      heads_.push_back(head_of(*each.out));
    }
    if (heads_.empty()) return;
    gathered_.clear();
    for (std::size_t index = 0; index < heads_.size(); ++index) {
      gathered_.push_back(net::buffer(heads_[index]));
      const auto& body = exchanges_[index].out->body();
      if (!body.empty()) gathered_.push_back(net::buffer(body));
    }
    writing_ = heads_.size();
    lowest().expires_after(server_->options.write_timeout);
    net::async_write(stream_, gathered_, [self = this->shared_from_this()](beast::error_code failure, std::size_t) { self->on_written(failure); });
  }

  void on_written(beast::error_code failure) {
    auto& server = *server_;
    std::size_t answered = 0;
    bool closing = false;
    for (std::size_t count = std::exchange(writing_, 0); count > 0; --count) {
      if (!exchanges_.front().interim) {
        ++answered;
        closing = closing || !exchanges_.front().keep_alive;
      }
      exchanges_.pop_front();
    }
    if (failure || closing) {
      // Nothing more can be written: answers still owed are abandoned.
      dead_ = read_closed_ = true;
      for (const auto& each : exchanges_) answered += each.interim ? 0 : 1;
      exchanges_.clear();
      close();
    } else {
      write_ready();
      // While stopping, requests the client already sent (pipelined, in the buffer) are
      // still read and answered; an idle connection closes.
      if (exchanges_.empty() && read_closed_) close();
      else pump();
    }
    server.busy -= answered;  // last: stop() may end the loop once nothing is owed
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    if constexpr (secure) {
      lowest().expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        self->lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      });
    } else {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  /// The request being handled (handle() and what it calls run while it is current).
  http::request<http::string_body> request_;
  std::uint64_t current_ = 0;
  route_kind route_ = route_kind::live;
  std::deque<exchange> exchanges_;
  std::uint64_t exchanges_opened_ = 0;
  /// Answers in the write under way; their heads and the buffers gathered for it.
  std::size_t writing_ = 0;
  std::vector<std::string> heads_;
  std::vector<net::const_buffer> gathered_;
  bool reading_ = false;
  /// No more requests are read (the client closed, sent `Connection: close` or garbage).
  bool read_closed_ = false;
  /// Nothing more is written.
  bool dead_ = false;
  bool closed_ = false;
  /// A `100 Continue` was owed and queued for the request being read.
  bool continued_ = false;
  std::shared_ptr<http_endpoint::implementation> server_;
};

using plain_session = session<beast::tcp_stream>;
using tls_session = session<beast::ssl_stream<beast::tcp_stream>>;
}  // namespace

void http_endpoint::implementation::answered(std::vector<routed_answer<infer_route>>& answers) {
  for (auto& [route, answer] : answers) {
    if (answer.ok()) route.asked->infer_answered(route.exchange, *route.call, answer.reply);
    else route.asked->infer_failed(route.exchange, answer.failure);
    route = {};  // the connection's reference goes before stop() may see nothing in flight
    in_flight--;  // last: stop() may tear down once nothing is in flight
  }
}

void http_endpoint::implementation::refuse_connection(tcp::socket socket) {
  connections_refused->add();
  if (tls) {
    beast::error_code ignored;
    socket.close(ignored);  // no handshake spent on a connection that cannot be served
    return;
  }
  // Answered without reading: the client learns why instead of seeing a reset.
  auto held = std::make_shared<tcp::socket>(std::move(socket));
  net::async_write(*held, net::buffer(connection_refusal), [held, keep = shared_from_this()](beast::error_code, std::size_t) {
    beast::error_code ignored;
    held->shutdown(tcp::socket::shutdown_both, ignored);
  });
}

void http_endpoint::implementation::accept() {
  // A connection's handlers need a strand only when several threads run the loop.
  const net::any_io_executor executor = options.threads > 1 ? net::any_io_executor(net::make_strand(io)) : net::any_io_executor(io.get_executor());
  acceptor.async_accept(executor, [self = shared_from_this()](beast::error_code failure, tcp::socket socket) {
    if (self->stopping) return;
    if (!failure) {
      if (self->connections.fetch_add(1) >= self->options.connections_max) {
        self->connections--;
        self->refuse_connection(std::move(socket));
      } else if (self->tls) {
        std::make_shared<tls_session>(self, std::move(socket), *self->tls)->start();
      } else {
        std::make_shared<plain_session>(self, std::move(socket))->start();
      }
    }
    self->accept();
  });
}

result<std::unique_ptr<http_endpoint>> http_endpoint::start(caf::actor_system& system, const http_endpoint_options& options) {
  auto io = std::make_unique<net::io_context>();
  auto self = std::make_shared<implementation>(system, options, *io);
  const std::string where = options.host + ":" + std::to_string(options.port);
  if (options.tls_certificate_file.empty() != options.tls_key_file.empty()) {
    return error(errc::invalid_argument, "HTTPS needs both a certificate (--tls-cert) and its private key (--tls-key)");
  }
  beast::error_code failure;
  if (!options.tls_certificate_file.empty()) {
    auto& tls = self->tls.emplace(net::ssl::context::tls_server);
    tls.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 | net::ssl::context::no_sslv3 |
                    net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
    tls.use_certificate_chain_file(options.tls_certificate_file, failure);
    if (failure) return error(errc::invalid_argument, "TLS certificate " + options.tls_certificate_file + ": " + failure.message());
    tls.use_private_key_file(options.tls_key_file, net::ssl::context::pem, failure);
    if (failure) return error(errc::invalid_argument, "TLS private key " + options.tls_key_file + ": " + failure.message());
    if (SSL_CTX_check_private_key(tls.native_handle()) != 1) {
      return error(errc::invalid_argument, "TLS private key " + options.tls_key_file + " does not belong to the certificate " +
                                               options.tls_certificate_file);
    }
  }
  auto address = net::ip::make_address(options.host, failure);
  if (failure) return error(errc::invalid_argument, "HTTP address " + options.host + ": " + failure.message());
  tcp::endpoint endpoint{address, static_cast<unsigned short>(options.port)};
  self->acceptor.open(endpoint.protocol(), failure);
  if (!failure) self->acceptor.set_option(net::socket_base::reuse_address(true), failure);
  if (!failure) self->acceptor.bind(endpoint, failure);
  if (!failure) self->acceptor.listen(net::socket_base::max_listen_connections, failure);
  if (failure) return error(errc::io_error, "HTTP " + where + ": cannot listen: " + failure.message());
  self->bound_port = self->acceptor.local_endpoint().port();
  ledger_options ledger;
  ledger.target = options.target;
  ledger.wait_for_target = options.wait_for_target;
  ledger.identity = options.identity;
  self->ledger = spawn_request_ledger<infer_route>(system, self.get(), ledger);
  self->accept();
  for (int index = 0; index < std::max(1, options.threads); ++index) self->threads.emplace_back([raw = self.get()] { raw->io.run(); });
  return std::unique_ptr<http_endpoint>(new http_endpoint(std::move(self), std::move(io)));
}

http_endpoint::http_endpoint(std::shared_ptr<implementation> self, std::unique_ptr<boost::asio::io_context> io)
    : self_(std::move(self)), io_(std::move(io)) {}

void http_endpoint::stop(std::chrono::milliseconds grace) {
  if (self_->threads.empty()) return;
  self_->stopping = true;
  net::post(self_->io, [self = self_] {
    beast::error_code ignored;
    self->acceptor.close(ignored);
  });
  // Every request read is answered (pipelined ones included) and written, within the grace.
  const auto until = std::chrono::steady_clock::now() + grace;
  while ((self_->in_flight.load() > 0 || self_->busy.load() > 0) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  self_->keep_running.reset();
  self_->io.stop();
  for (auto& thread : self_->threads) thread.join();
  self_->threads.clear();
  // The ledger calls back into this endpoint: it must be gone before the endpoint is. Its
  // state goes with it, and the connections of requests serving never answered (the grace
  // ran out) with that.
  caf::scoped_actor waiter{self_->system};
  waiter->monitor(self_->ledger);
  caf::anon_send_exit(self_->ledger, caf::exit_reason::user_shutdown);
  waiter->receive([](caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
}

http_endpoint::~http_endpoint() {
  stop();
  // Destroying the loop destroys the handlers it still holds, and with them the last
  // references to the connections and to the implementation.
  self_.reset();
  io_.reset();
}

int http_endpoint::port() const { return self_->bound_port; }
std::uint64_t http_endpoint::answered() const { return self_->responses.load(); }
std::size_t http_endpoint::in_flight() const { return self_->in_flight.load(); }

}  // namespace rml::messaging


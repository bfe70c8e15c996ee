#include "messaging/http_endpoint.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <caf/all.hpp>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <optional>
#include <thread>
#include <unordered_map>

#include "messaging/actor_bridge.hpp"
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
  virtual void infer_answered(const v2::infer_call& call, const predict_reply& reply) = 0;
  virtual void infer_failed(const caf::error& failure) = 0;
};

template <class Stream>
class session;
}  // namespace

struct http_endpoint::implementation : std::enable_shared_from_this<implementation>, predict_listener {
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
  caf::actor bridge;
  /// Infer requests at serving, by ticket: who asked and what.
  std::mutex pending_mutex;
  std::uint64_t next_ticket = 0;
  struct pending_infer {
    std::shared_ptr<responder> asked;
    std::shared_ptr<v2::infer_call> call;
    std::shared_ptr<net::steady_timer> deadline;
  };
  std::unordered_map<std::uint64_t, pending_infer> pending;

  void answered(std::vector<ticketed_answer>& answers) override;
  /// Infer requests read and not yet sent to serving: the requests parsed in one turn of the
  /// event loop go as one burst (the first schedules the send behind the handlers queued).
  std::mutex burst_mutex;
  predict_burst burst;
  void send_to_serving(std::uint64_t ticket, predict_request request) {
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(burst_mutex);
      first = burst.requests.empty();
      burst.requests.push_back({ticket, std::move(request)});
    }
    if (!first) return;
    net::post(io, [self = shared_from_this()] {
      predict_burst ready;
      {
        std::lock_guard<std::mutex> lock(self->burst_mutex);
        ready.requests.swap(self->burst.requests);
      }
      caf::anon_send(self->bridge, std::move(ready));
    });
  }
  pending_infer take(std::uint64_t ticket) {
    std::lock_guard<std::mutex> lock(pending_mutex);
    auto found = pending.find(ticket);
    if (found == pending.end()) return {};
    auto taken = std::move(found->second);
    pending.erase(found);
    return taken;
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
        if (!failure) self->read();  // a failed handshake has no HTTP to answer
      });
    } else {
      read();
    }
  }

  void infer_answered(const v2::infer_call& call, const predict_reply& reply) override {
    auto [body, json_bytes] = v2::infer_response(call, reply, server_->options.model);
    send(http::status::ok, std::move(body), json_bytes ? "application/octet-stream" : "application/json", json_bytes);
  }

  void infer_failed(const caf::error& failure) override {
    const auto code = failure == caf::sec::request_timeout ? errc::deadline_exceeded : client_code(failure);
    send_error(status_of(code), describe(failure));
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void read() {
    parser_.emplace();
    parser_->body_limit(server_->options.body_bytes_max);
    lowest().expires_after(server_->options.request_timeout);
    // The head first: a client that asks `Expect: 100-continue` (curl, for bodies over 1 KB)
    // waits for the interim answer before it sends the body.
    http::async_read_header(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code failure, std::size_t) {
      if (failure || self->parser_->is_done()) return self->on_read(failure);
      if (beast::iequals(self->parser_->get()[http::field::expect], "100-continue")) {
        auto interim = std::make_shared<http::response<http::empty_body>>(http::status::continue_, self->parser_->get().version());
        return http::async_write(self->stream_, *interim, [self, interim](beast::error_code failure, std::size_t) {
          if (failure) return self->on_read(failure);
          self->read_body();
        });
      }
      self->read_body();
    });
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code failure, std::size_t) { self->on_read(failure); });
  }

  void on_read(beast::error_code failure) {
    const bool counted_read = std::exchange(counted_read_, false);
    const bool benign = failure == http::error::end_of_stream || failure == beast::error::timeout || failure == net::error::operation_aborted ||
                        failure == net::error::connection_reset || failure == net::error::eof || failure == net::ssl::error::stream_truncated;
    if (!benign) server_->busy++;  // a response is owed
    if (counted_read) server_->busy--;
    if (benign) return close();
    lowest().expires_never();  // serving may take the request's whole timeout; writes set their own
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
    const std::string_view target(request_.target().data(), request_.target().size());
    auto routed = v2::route_of(target, server_->options.model);
    if (!routed) return send_error(status_of(routed.error().code()), routed.error().message());
    route_ = routed->kind;
    const auto allowed = v2::takes_post(route_) ? http::verb::post : http::verb::get;
    if (request_.method() != allowed) {
      return send_error(http::status::method_not_allowed,
                        std::string(request_.method_string()) + " " + std::string(target) + ": use " + std::string(http::to_string(allowed)),
                        0, {http::field::allow, std::string(http::to_string(allowed))});
    }
    if (!admitted()) return;
    const std::uint64_t version = routed->version;
    switch (route_) {
      case route_kind::metrics:
        return send(http::status::ok, server_->options.telemetry.metrics->render(), "text/plain; version=0.0.4; charset=utf-8");
      case route_kind::trace: {
        std::string lines;
        for (const auto& event : server_->options.telemetry.trace->recent(trace_log::ring_events_max)) lines += to_json_line(event) + "\n";
        return send(http::status::ok, std::move(lines), "application/x-ndjson");
      }
      case route_kind::server_metadata:
        return send(http::status::ok, v2::server_metadata_json(), "application/json");
      case route_kind::live:
        return send(http::status::ok, "{\"live\":true}", "application/json");
      case route_kind::ready:
        return with_info([self = this->shared_from_this()](const serving_info& info) {
          self->send(info.ready ? http::status::ok : http::status::service_unavailable,
                     std::string("{\"ready\":") + (info.ready ? "true" : "false") + "}", "application/json");
        });
      case route_kind::model_metadata:
        return with_info([self = this->shared_from_this(), version](const serving_info& info) {
          if (version != 0 && !loaded(info, version)) return self->send_error(http::status::not_found, not_loaded(info, version));
          self->send(http::status::ok, v2::metadata_json(info), "application/json");
        });
      case route_kind::model_ready:
        return with_info([self = this->shared_from_this(), version](const serving_info& info) {
          const bool ready = info.ready && (version == 0 || loaded(info, version));
          self->send(ready ? http::status::ok : http::status::service_unavailable,
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
        send_error(http::status::forbidden, "control endpoints are off: this server was started without a control key");
        return false;
      }
      if (!bearer_is(options.control_key)) {
        send_error(http::status::unauthorized, "this control endpoint needs the control key: Authorization: Bearer <key>", 0,
                   {http::field::www_authenticate, "Bearer realm=\"rml-control\""});
        return false;
      }
      if (!content_type_is(content_type, "application/json")) {
        send_error(http::status::unsupported_media_type, "Content-Type must be application/json, got '" + std::string(content_type) + "'");
        return false;
      }
    } else if (route_ == route_kind::infer) {
      if (!options.infer_token.empty() && !bearer_is(options.infer_token)) {
        send_error(http::status::unauthorized, "inference needs the token: Authorization: Bearer <token>", 0,
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

  caf::actor target() { return server_->system.registry().get<caf::actor>(server_->options.target); }

  template <class Then>
  void with_info(Then then) {
    auto serving = target();
    if (!serving) return send_error(http::status::service_unavailable, "serving is not running");
    auto self = this->shared_from_this();
    ask_from_outside<serving_info>(
        server_->system, serving, std::chrono::seconds(5), info_atom::value, [then](serving_info& info) mutable { then(info); },
        [self](caf::error& failure) { self->send_error(http::status::service_unavailable, "serving did not answer: " + describe(failure)); });
  }

  void infer(std::uint64_t version) {
    const auto header = request_.find("Inference-Header-Content-Length");
    const std::string header_text = header == request_.end() ? std::string() : std::string(header->value());
    const v2::input_limits limits{server_->options.features, 65'536, server_->options.feature_magnitude_max};
    auto parsed = v2::parse_infer(request_.body(), header == request_.end() ? nullptr : &header_text, limits);
    if (!parsed) return send_error(status_of(parsed.error().code()), "model '" + server_->options.model + "': " + parsed.error().message());
    auto serving = target();
    if (!serving) return send_error(http::status::service_unavailable, "serving is not running");
    if (server_->in_flight.fetch_add(1) >= server_->options.in_flight_max) {
      server_->in_flight--;
      return send_error(http::status::service_unavailable,
                        "overloaded: more than " + std::to_string(server_->options.in_flight_max) + " requests in flight");
    }
    auto call = std::make_shared<v2::infer_call>(std::move(parsed.value()));
    call->request.request_id = v2::numeric_id(call->id);
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
      server_->pending.emplace(ticket, http_endpoint::implementation::pending_infer{this->shared_from_this(), call, deadline});
    }
    const std::uint64_t request_id = call->request.request_id;
    deadline->async_wait([server = server_, ticket, request_id](beast::error_code failure) {
      if (failure) return;  // cancelled: answered in time
      auto entry = server->take(ticket);
      if (!entry.asked) return;
      entry.asked->infer_failed(make_error(errc::deadline_exceeded, "request " + std::to_string(request_id) + ": no answer by its deadline"));
      server->in_flight--;
    });
    server_->send_to_serving(ticket, std::move(call->request));
  }

  void feedback() {
    auto parsed = v2::parse_feedback(request_.body());
    if (!parsed) return send_error(status_of(parsed.error().code()), parsed.error().message());
    auto serving = target();
    if (!serving) return send_error(http::status::service_unavailable, "serving is not running");
    auto self = this->shared_from_this();
    ask_from_outside<bool>(
        server_->system, serving, std::chrono::seconds(5), *parsed,
        [self](bool matched) { self->send(http::status::ok, std::string("{\"matched\":") + (matched ? "true" : "false") + "}", "application/json"); },
        [self](caf::error& failure) { self->send_error(http::status::service_unavailable, describe(failure)); });
  }

  void set_policy() {
    auto parsed = v2::parse_policy(request_.body());
    if (!parsed) return send_error(http::status::bad_request, parsed.error().message());
    auto serving = target();
    if (!serving) return send_error(http::status::service_unavailable, "serving is not running");
    auto self = this->shared_from_this();
    ask_from_outside<std::string>(
        server_->system, serving, std::chrono::seconds(5), caf::make_message(policy_atom::value, std::move(*parsed)),
        [self](std::string& policy) { self->send(http::status::ok, json::object_with("policy", policy), "application/json"); },
        [self](caf::error& failure) { self->send_error(status_of(client_code(failure)), describe(failure)); });
  }

  void set_batching() {
    auto change = v2::parse_batching(request_.body());
    if (!change) return send_error(status_of(change.error().code()), change.error().message());
    with_info([self = this->shared_from_this(), change = *change](const serving_info& info) {
      const batching_settings settings = change.applied_to(info.batching);
      if (auto serving = self->target()) caf::anon_send(serving, settings);
      self->send(http::status::ok, v2::batching_json(settings), "application/json");
    });
  }

  struct header_line {
    http::field name = http::field::unknown;
    std::string value;
  };

  void send_error(http::status status, const std::string& message, unsigned version = 0, header_line extra = {}) {
    if (version) version_ = version;
    send(status, v2::error_json(message), "application/json", 0, std::move(extra));
  }

  /// Any thread: the response is written on the connection's own executor.
  void send(http::status status, std::string body, const char* content_type, std::size_t json_header_bytes = 0, header_line extra = {}) {
    auto out = std::make_shared<response>(status, version_);
    out->set(http::field::server, server_name);
    out->set(http::field::content_type, content_type);
    if (json_header_bytes) out->set("Inference-Header-Content-Length", std::to_string(json_header_bytes));
    if (extra.name != http::field::unknown) out->set(extra.name, extra.value);
    out->keep_alive(keep_alive_);
    out->body() = std::move(body);
    out->prepare_payload();
    net::post(stream_.get_executor(), [self = this->shared_from_this(), out, status] {
      auto& server = *self->server_;
      server.count(status);
      if (self->route_ == route_kind::infer) {
        server.infer_latency->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - self->started_).count());
      }
      self->response_ = out;
      self->lowest().expires_after(server.options.write_timeout);
      http::async_write(self->stream_, *out, [self](beast::error_code failure, std::size_t) { self->on_written(failure); });
    });
  }

  void on_written(beast::error_code failure) {
    auto& server = *server_;
    // While stopping, requests the client already sent (pipelined, now in the buffer) are
    // still read and answered; an idle connection closes.
    const bool more = !failure && keep_alive_ && (!server.stopping || buffer_.size() > 0);
    if (more && server.stopping) {
      server.busy++;
      counted_read_ = true;
    }
    route_ = route_kind::live;
    if (more) read();
    else close();
    server.busy--;  // last: stop() may end the loop once nothing is owed
  }

  void close() {
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
  http::request<http::string_body> request_;
  std::shared_ptr<response> response_;
  bool keep_alive_ = true;
  bool counted_read_ = false;
  route_kind route_ = route_kind::live;
  unsigned version_ = 11;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<http_endpoint::implementation> server_;
};

using plain_session = session<beast::tcp_stream>;
using tls_session = session<beast::ssl_stream<beast::tcp_stream>>;
}  // namespace

void http_endpoint::implementation::answered(std::vector<ticketed_answer>& answers) {
  for (auto& answer : answers) {
    auto entry = take(answer.ticket);
    if (!entry.asked) continue;  // the deadline timer answered (and counted) it
    net::post(entry.deadline->get_executor(), [deadline = entry.deadline] { deadline->cancel(); });
    if (answer.ok()) entry.asked->infer_answered(*entry.call, answer.reply);
    else entry.asked->infer_failed(answer.failure);
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
  self->bridge = spawn_predict_bridge(system, self.get(), options.target);
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
  // The bridge calls back into this endpoint: it must be gone before the endpoint is.
  caf::scoped_actor waiter{self_->system};
  waiter->monitor(self_->bridge);
  caf::anon_send_exit(self_->bridge, caf::exit_reason::user_shutdown);
  waiter->receive([](caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
  // Requests serving never answered (the grace ran out) release their connections.
  std::lock_guard<std::mutex> lock(self_->pending_mutex);
  self_->pending.clear();
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


#include "topologies/etcd_control_plane.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace rml::control {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

namespace {

struct endpoint {
  std::string url, host, port;
  bool tls = false;
};

result<endpoint> parse_url(const std::string& url) {
  const bool tls = url.rfind("https://", 0) == 0;
  if (!tls && url.rfind("http://", 0) != 0) {
    return error(errc::invalid_argument, "etcd endpoint '" + url + "': expected http://HOST:PORT or https://HOST:PORT");
  }
  const std::string rest = url.substr(tls ? 8 : 7);
  const auto colon = rest.rfind(':');
  const std::string port = colon == std::string::npos ? "" : rest.substr(colon + 1);
  if (colon == 0 || colon == std::string::npos || port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
      rest.find('/') != std::string::npos) {
    return error(errc::invalid_argument, "etcd endpoint '" + url + "': expected http://HOST:PORT or https://HOST:PORT");
  }
  return endpoint{url, rest.substr(0, colon), port, tls};
}

/// Asio names every OpenSSL failure "asio.ssl error": OpenSSL's own reason says what it was.
std::string tls_reason(const beast::error_code& failure) {
  if (failure.category() == net::error::get_ssl_category()) {
    if (const char* reason = ERR_reason_error_string(static_cast<unsigned long>(failure.value()))) return reason;
  }
  return failure.message();
}

/// Why a certificate, key or CA file could not be used: missing, or what OpenSSL said of it.
error tls_file_error(const std::string& what, const std::string& file, const beast::error_code& failure) {
  std::error_code ignored;
  const std::string why = std::filesystem::exists(file, ignored) ? tls_reason(failure) : "no such file";
  return error(errc::io_error, "etcd TLS: " + what + " '" + file + "': " + why);
}

/// The TLS client context for https:// endpoints: etcd's certificate must chain to `ca_file`
/// (or the system's roots) and name the host; with cert_file and key_file this client
/// presents its own certificate (etcd's --client-cert-auth). Errors name the file.
result<std::shared_ptr<net::ssl::context>> tls_context(const etcd_options& options) {
  auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
  beast::error_code failure;
  context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
  context->set_verify_mode(net::ssl::verify_peer);
  if (options.ca_file.empty()) context->set_default_verify_paths(failure);
  else context->load_verify_file(options.ca_file, failure);
  if (failure) return tls_file_error("CA file", options.ca_file, failure);
  if (options.cert_file.empty() != options.key_file.empty()) {
    return error(errc::invalid_argument, "etcd TLS: a client certificate needs both its certificate and its key file");
  }
  if (!options.cert_file.empty()) {
    context->use_certificate_chain_file(options.cert_file, failure);
    if (failure) return tls_file_error("certificate file", options.cert_file, failure);
    context->use_private_key_file(options.key_file, net::ssl::context::pem, failure);
    if (failure) return tls_file_error("key file", options.key_file, failure);
  }
  return context;
}

// Base64 through OpenSSL (already a dependency) rather than by hand: etcd's JSON carries
// keys and values as base64 bytes.
std::string base64(std::string_view bytes) {
  std::string text(4 * ((bytes.size() + 2) / 3), '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                                      int(bytes.size()));
  text.resize(std::size_t(written));
  return text;
}

std::optional<std::string> unbase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string bytes(3 * (text.size() / 4), '\0');
  const int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()), reinterpret_cast<const unsigned char*>(text.data()),
                                      int(text.size()));
  if (written < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding's zero bytes as data.
  std::size_t padding = 0;
  for (auto it = text.rbegin(); it != text.rend() && *it == '=' && padding < 2; ++it) ++padding;
  bytes.resize(std::size_t(written) - padding);
  return bytes;
}

/// etcd writes 64-bit numbers as decimal strings and leaves out fields that are zero.
std::int64_t number_in(const rapidjson::Value& object, const char* field) {
  if (!object.IsObject()) return 0;
  auto member = object.FindMember(field);
  if (member == object.MemberEnd()) return 0;
  if (member->value.IsString()) return std::strtoll(member->value.GetString(), nullptr, 10);
  if (member->value.IsInt64()) return member->value.GetInt64();
  return 0;
}

bool flag_in(const rapidjson::Value& object, const char* field) {
  if (!object.IsObject()) return false;
  auto member = object.FindMember(field);
  return member != object.MemberEnd() && member->value.IsBool() && member->value.GetBool();
}

std::string bytes_in(const rapidjson::Value& object, const char* field) {
  if (!object.IsObject()) return {};
  auto member = object.FindMember(field);
  if (member == object.MemberEnd() || !member->value.IsString()) return {};
  return unbase64(std::string_view(member->value.GetString(), member->value.GetStringLength())).value_or(std::string());
}

const rapidjson::Value& member_or_null(const rapidjson::Value& object, const char* field) {
  static const rapidjson::Value null;
  if (!object.IsObject()) return null;
  auto member = object.FindMember(field);
  return member == object.MemberEnd() ? null : member->value;
}

key_value kv_of(const rapidjson::Value& kv) {
  return {bytes_in(kv, "key"), bytes_in(kv, "value"), number_in(kv, "create_revision"), number_in(kv, "mod_revision"),
          number_in(kv, "version"), number_in(kv, "lease")};
}

std::vector<key_value> kvs_of(const rapidjson::Value& response) {
  std::vector<key_value> found;
  const auto& kvs = member_or_null(response, "kvs");
  if (kvs.IsArray()) {
    for (const auto& kv : kvs.GetArray()) found.push_back(kv_of(kv));
  }
  return found;
}

void write_range(json_writer& out, const key_range& keys) {
  out.Key("key");
  // etcd refuses an empty key; every key from the smallest is "\0" to "\0" there.
  const bool everything = keys.key.empty() && keys.end == std::string(1, '\0');
  out.String(base64(everything ? std::string(1, '\0') : keys.key).c_str());
  if (!keys.end.empty()) {
    out.Key("range_end");
    out.String(base64(keys.end).c_str());
  }
}

void write_number(json_writer& out, const char* field, std::int64_t value) {
  out.Key(field);
  out.String(std::to_string(value).c_str());
}

const char* target_of(compare::field field) {
  switch (field) {
    case compare::field::version: return "VERSION";
    case compare::field::create_revision: return "CREATE";
    case compare::field::mod_revision: return "MOD";
    case compare::field::value: return "VALUE";
    case compare::field::lease: return "LEASE";
  }
  return "VERSION";
}

const char* result_of(compare::relation relation) {
  switch (relation) {
    case compare::relation::equal: return "EQUAL";
    case compare::relation::not_equal: return "NOT_EQUAL";
    case compare::relation::greater: return "GREATER";
    case compare::relation::less: return "LESS";
  }
  return "EQUAL";
}

void write_compare(json_writer& out, const compare& condition) {
  out.StartObject();
  out.Key("key");
  out.String(base64(condition.key).c_str());
  out.Key("target");
  out.String(target_of(condition.what));
  out.Key("result");
  out.String(result_of(condition.is));
  switch (condition.what) {
    case compare::field::version: write_number(out, "version", condition.number); break;
    case compare::field::create_revision: write_number(out, "create_revision", condition.number); break;
    case compare::field::mod_revision: write_number(out, "mod_revision", condition.number); break;
    case compare::field::lease: write_number(out, "lease", condition.number); break;
    case compare::field::value:
      out.Key("value");
      out.String(base64(condition.text).c_str());
      break;
  }
  out.EndObject();
}

void write_operation(json_writer& out, const operation& op) {
  out.StartObject();
  switch (op.type) {
    case operation::kind::range:
      out.Key("request_range");
      out.StartObject();
      write_range(out, op.keys);
      out.EndObject();
      break;
    case operation::kind::put:
      out.Key("request_put");
      out.StartObject();
      write_range(out, op.keys);
      out.Key("value");
      out.String(base64(op.value).c_str());
      if (op.lease != 0) write_number(out, "lease", op.lease);
      out.EndObject();
      break;
    case operation::kind::erase:
      out.Key("request_delete_range");
      out.StartObject();
      write_range(out, op.keys);
      out.EndObject();
      break;
  }
  out.EndObject();
}

/// An error etcd answered: gRPC's NotFound (a lease that does not exist) and OutOfRange (a
/// revision compacted away or in the future) are not_found, as the interface promises.
error etcd_error(const std::string& where, unsigned http_status, const std::string& body) {
  rapidjson::Document document;
  document.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  std::string message = body;
  std::int64_t code = -1;
  if (!document.HasParseError() && document.IsObject()) {
    code = number_in(document, "code");
    const auto& text = member_or_null(document, "message");
    if (text.IsString()) message = text.GetString();
  }
  const errc kind = (code == 5 || code == 11) ? errc::not_found : code == 14 ? errc::not_ready : errc::io_error;
  return error(kind, where + ": etcd answered " + std::to_string(http_status) + ": " + message);
}

/// One keep-alive HTTP/1.1 connection (TLS for https://) to one etcd endpoint, used by one
/// thread at a time. Operations are asynchronous on a private io_context run to completion,
/// so that each has a deadline (beast::tcp_stream's expiry) while the caller blocks.
class connection {
 public:
  connection(endpoint where, std::shared_ptr<net::ssl::context> tls) : where_(std::move(where)), tls_context_(std::move(tls)) {}

  const endpoint& where() const { return where_; }

  /// POSTs `body` to `path`. `sent` says whether the request was written (then a failure
  /// may or may not have been applied by etcd).
  result<std::pair<unsigned, std::string>> post(const std::string& path, const std::string& body, std::chrono::milliseconds timeout,
                                                bool& sent) {
    sent = false;
    if (auto opened = open(timeout); !opened) return opened.error();
    auto request = request_for(path, body);
    request.keep_alive(true);
    beast::error_code failure;
    lowest().expires_after(timeout);
    with_stream([&](auto& stream) { http::async_write(stream, request, [&](beast::error_code code, std::size_t) { failure = code; }); });
    run();
    if (failure) return lost("sending " + path, failure);
    sent = true;
    http::response<http::string_body> response;
    with_stream([&](auto& stream) { http::async_read(stream, buffer_, response, [&](beast::error_code code, std::size_t) { failure = code; }); });
    run();
    if (failure) return lost("reading the answer to " + path, failure);
    if (!response.keep_alive()) close();
    return std::pair<unsigned, std::string>{response.result_int(), std::move(response.body())};
  }

  /// Opens the stream for a watch and sends its request; the answer is read by read_stream.
  status start_stream(const std::string& path, const std::string& body, std::chrono::milliseconds timeout) {
    if (auto opened = open(timeout); !opened) return opened;
    auto request = request_for(path, body);
    beast::error_code failure;
    lowest().expires_after(timeout);
    with_stream([&](auto& stream) { http::async_write(stream, request, [&](beast::error_code code, std::size_t) { failure = code; }); });
    run();
    if (failure) return lost("sending " + path, failure);
    return {};
  }

  /// Reads a streamed (chunked) answer, handing each line of its body to `line` as it comes,
  /// until the stream ends, fails or is closed from another thread (close_from_elsewhere).
  /// `line` returns false to stop reading.
  template <class Line>
  status read_stream(Line line) {
    http::response_parser<http::empty_body> parser;
    parser.body_limit(boost::none);
    std::string pending;
    bool stop = false;
    // Beast keeps a reference to the callback: it must outlive the parser's reads.
    auto on_body = [&](std::uint64_t, beast::string_view data, beast::error_code&) -> std::size_t {
      pending.append(data.data(), data.size());
      std::size_t newline;
      while (!stop && (newline = pending.find('\n')) != std::string::npos) {
        if (newline > 0 && !line(std::string_view(pending.data(), newline))) stop = true;
        pending.erase(0, newline + 1);
      }
      return data.size();
    };
    parser.on_chunk_body(on_body);
    beast::error_code failure;
    lowest().expires_never();
    with_stream([&](auto& stream) { http::async_read_header(stream, buffer_, parser, [&](beast::error_code code, std::size_t) { failure = code; }); });
    run();
    if (failure) return lost("reading a watch", failure);
    if (parser.get().result() != http::status::ok) {
      close();
      return error(errc::io_error, where_.url + ": a watch was answered " + std::to_string(parser.get().result_int()));
    }
    while (!stop && !parser.is_done()) {
      with_stream([&](auto& stream) { http::async_read_some(stream, buffer_, parser, [&](beast::error_code code, std::size_t) { failure = code; }); });
      run();
      if (failure) return lost("reading a watch", failure);
    }
    close();
    return {};
  }

  /// Closes the socket from any thread: what the owning thread waits for ends with an error
  /// (the stream itself is released by the owning thread).
  void close_from_elsewhere() {
    net::post(io_, [this] {
      if (!is_open()) return;
      beast::error_code ignored;
      lowest().socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
      lowest().socket().close(ignored);
    });
  }

  /// Points the connection at another endpoint (owning thread only).
  void retarget(endpoint where) {
    close();
    where_ = std::move(where);
  }

  void close() {
    if (is_open()) {
      // No TLS close_notify: the connection is dropped, not reused, and etcd needs none.
      beast::error_code ignored;
      lowest().socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
      lowest().close();
    }
    plain_.reset();
    tls_.reset();
    buffer_.clear();
  }

 private:
  bool is_open() const { return plain_.has_value() || tls_.has_value(); }
  beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  template <class Use>
  void with_stream(Use use) {
    if (tls_) use(*tls_);
    else use(*plain_);
  }

  http::request<http::string_body> request_for(const std::string& path, const std::string& body) const {
    http::request<http::string_body> request{http::verb::post, path, 11};
    request.set(http::field::host, where_.host + ":" + where_.port);
    request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    return request;
  }

  status open(std::chrono::milliseconds timeout) {
    if (is_open()) return {};
    if (where_.tls) {
      if (!tls_context_) return error(errc::invalid_argument, where_.url + ": https needs the TLS settings");
      tls_.emplace(io_, *tls_context_);
      // etcd's certificate must name the host (DNS name or IP address in its SAN).
      tls_->set_verify_callback(net::ssl::host_name_verification(where_.host));
      beast::error_code not_an_address;
      net::ip::make_address(where_.host, not_an_address);
      if (not_an_address) SSL_set_tlsext_host_name(tls_->native_handle(), where_.host.c_str());  // SNI: names only
    } else {
      plain_.emplace(io_);
    }
    net::ip::tcp::resolver resolver(io_);
    beast::error_code failure;
    auto addresses = resolver.resolve(where_.host, where_.port, failure);
    if (failure) {
      close();
      return error(errc::io_error, where_.url + ": cannot resolve " + where_.host + ": " + failure.message());
    }
    lowest().expires_after(timeout);
    lowest().async_connect(addresses, [&](beast::error_code code, const net::ip::tcp::endpoint&) { failure = code; });
    run();
    if (!failure && !lowest().socket().is_open()) failure = net::error::operation_aborted;  // closed from elsewhere
    if (failure) {
      close();
      return error(errc::io_error, where_.url + ": cannot connect: " + failure.message());
    }
    lowest().socket().set_option(net::ip::tcp::no_delay(true));
    if (tls_) {
      tls_->async_handshake(net::ssl::stream_base::client, [&](beast::error_code code) { failure = code; });
      run();
      if (failure) {
        const std::string why = describe_tls(failure);
        close();
        return error(errc::unauthorized, where_.url + ": TLS handshake failed: " + why);
      }
    }
    return {};
  }

  /// OpenSSL's reason, with the certificate check's verdict when that is what failed.
  std::string describe_tls(const beast::error_code& failure) {
    std::string text = tls_reason(failure);
    if (tls_) {
      const long verdict = SSL_get_verify_result(tls_->native_handle());
      if (verdict != X509_V_OK) text += " (etcd's certificate: " + std::string(X509_verify_cert_error_string(verdict)) + ")";
    }
    return text;
  }

  void run() {
    io_.restart();
    io_.run();
  }

  error lost(const std::string& what, const beast::error_code& failure) {
    close();
    const bool timed_out = failure == beast::error::timeout;
    return error(timed_out ? errc::deadline_exceeded : errc::io_error,
                 where_.url + ": " + what + ": " + (timed_out ? std::string("timed out") : tls_reason(failure)));
  }

  endpoint where_;
  std::shared_ptr<net::ssl::context> tls_context_;
  net::io_context io_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
};

}  // namespace

result<std::vector<std::string>> parse_etcd_endpoints(const std::string& text) {
  std::vector<std::string> endpoints;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const std::string url = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (auto parsed = parse_url(url); !parsed) return parsed.error();
    endpoints.push_back(url);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return endpoints;
}

struct etcd_control_plane::implementation {
  etcd_options options;
  std::vector<endpoint> endpoints;

  std::mutex calls;  // one unary call at a time on the shared connection
  std::size_t current = 0;
  std::optional<connection> shared;
  /// For https:// endpoints (null when every endpoint is http://).
  std::shared_ptr<net::ssl::context> tls;

  struct watcher {
    std::unique_ptr<connection> stream;
    std::thread thread;
    std::atomic<bool> stopped{false};
    std::mutex sleeping;
    std::condition_variable wake;
  };
  std::mutex watches;
  std::map<watch_id, std::shared_ptr<watcher>> watchers;
  /// Watches cancelled from their own callback: joined when the plane goes.
  std::vector<std::shared_ptr<watcher>> finished;
  watch_id next_watch = 1;

  /// A unary call: the answer's JSON when etcd answered 200. A call that could not be sent
  /// goes to the next endpoint; a sent one is retried only when `idempotent`.
  result<rapidjson::Document> call(const std::string& path, const std::string& body, bool idempotent) {
    std::lock_guard lock(calls);
    error last(errc::io_error, "no etcd endpoint");
    for (std::size_t attempt = 0; attempt < endpoints.size() + 1; ++attempt) {
      if (!shared) shared.emplace(endpoints[current], tls);
      bool sent = false;
      auto answer = shared->post(path, body, options.request_timeout, sent);
      if (!answer) {
        last = answer.error();
        shared.reset();
        current = (current + 1) % endpoints.size();
        if (sent && !idempotent) return last;
        continue;
      }
      auto& [http_status, text] = answer.value();
      if (http_status != 200) return etcd_error(endpoints[current].url + " " + path, http_status, text);
      rapidjson::Document document;
      document.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
      if (document.HasParseError() || !document.IsObject()) {
        return error(errc::parse_error, endpoints[current].url + " " + path + ": the answer is not a JSON object");
      }
      return document;
    }
    return last;
  }

  /// A watch's thread: `target` is the endpoint its connection points at.
  void run_watch(const std::shared_ptr<watcher>& self, std::size_t target, std::string key, std::string end, revision from,
                 watch_callback deliver) {
    revision next = from;
    while (!self->stopped.load()) {
      std::string body;
      {
        rapidjson::StringBuffer buffer;
        json_writer out(buffer);
        out.StartObject();
        out.Key("create_request");
        out.StartObject();
        write_range(out, key_range{key, end});
        write_number(out, "start_revision", next);
        out.EndObject();
        out.EndObject();
        body = buffer.GetString();
      }
      bool cancelled = false;
      auto started = self->stream->start_stream("/v3/watch", body, options.request_timeout);
      if (started) {
        (void)self->stream->read_stream([&](std::string_view line) {
          rapidjson::Document document;
          document.Parse<rapidjson::kParseIterativeFlag>(line.data(), line.size());
          if (document.HasParseError() || !document.IsObject()) return false;  // reconnect
          const auto& result = member_or_null(document, "result");
          if (!result.IsObject()) return false;
          if (flag_in(result, "canceled")) {
            watch_response response;
            response.cancelled = true;
            response.compact_revision = number_in(result, "compact_revision");
            if (!self->stopped.load()) deliver(response);
            cancelled = true;
            return false;
          }
          const auto& events = member_or_null(result, "events");
          if (!events.IsArray()) return true;
          // etcd may send several revisions in one answer: the interface delivers one at a time.
          watch_response response;
          for (const auto& event : events.GetArray()) {
            watch_event change;
            change.type = std::string_view(member_or_null(event, "type").IsString() ? member_or_null(event, "type").GetString() : "") ==
                                  "DELETE"
                              ? watch_event::kind::erase
                              : watch_event::kind::put;
            change.kv = kv_of(member_or_null(event, "kv"));
            if (!response.events.empty() && response.events.back().kv.mod_revision != change.kv.mod_revision) {
              if (self->stopped.load()) return false;
              deliver(response);
              response.events.clear();
            }
            next = change.kv.mod_revision + 1;
            response.events.push_back(std::move(change));
          }
          if (!response.events.empty() && !self->stopped.load()) deliver(response);
          return !self->stopped.load();
        });
      }
      if (cancelled || self->stopped.load()) return;
      // The connection was lost: the next endpoint, after a pause.
      target = (target + 1) % endpoints.size();
      self->stream->retarget(endpoints[target]);
      std::unique_lock lock(self->sleeping);
      self->wake.wait_for(lock, options.watch_retry, [&] { return self->stopped.load(); });
    }
  }
};

etcd_control_plane::etcd_control_plane(std::unique_ptr<implementation> self) : self_(std::move(self)) {}

result<std::unique_ptr<etcd_control_plane>> etcd_control_plane::connect(const etcd_options& options) {
  if (options.endpoints.empty()) return error(errc::invalid_argument, "etcd: no endpoint given");
  auto self = std::make_unique<implementation>();
  self->options = options;
  for (const auto& url : options.endpoints) {
    auto parsed = parse_url(url);
    if (!parsed) return parsed.error();
    self->endpoints.push_back(parsed.value());
  }
  if (std::any_of(self->endpoints.begin(), self->endpoints.end(), [](const endpoint& where) { return where.tls; })) {
    auto context = tls_context(options);
    if (!context) return context.error();
    self->tls = std::move(context.value());
  } else if (!options.ca_file.empty() || !options.cert_file.empty()) {
    return error(errc::invalid_argument, "etcd: TLS files given, but no endpoint is https://");
  }
  std::unique_ptr<etcd_control_plane> plane(new etcd_control_plane(std::move(self)));
  if (auto now = plane->current_revision(); !now) return now.error();
  return plane;
}

etcd_control_plane::~etcd_control_plane() {
  std::vector<watch_id> open;
  {
    std::lock_guard lock(self_->watches);
    for (const auto& [id, watcher] : self_->watchers) open.push_back(id);
  }
  for (watch_id id : open) cancel(id);
  for (auto& watcher : self_->finished) {
    if (watcher->thread.joinable()) watcher->thread.join();
  }
}

result<lease_id> etcd_control_plane::grant(std::chrono::milliseconds ttl) {
  const auto seconds = std::max<std::int64_t>(1, (ttl.count() + 999) / 1000);
  auto answer = self_->call("/v3/lease/grant", "{\"TTL\":\"" + std::to_string(seconds) + "\"}", false);
  if (!answer) return answer.error();
  const auto& document = answer.value();
  const auto& failure = member_or_null(document, "error");
  if (failure.IsString() && failure.GetStringLength() > 0) return error(errc::io_error, std::string("etcd lease grant: ") + failure.GetString());
  return number_in(document, "ID");
}

result<std::chrono::milliseconds> etcd_control_plane::keep_alive(lease_id lease) {
  auto answer = self_->call("/v3/lease/keepalive", "{\"ID\":\"" + std::to_string(lease) + "\"}", true);
  if (!answer) return answer.error();
  const std::int64_t ttl = number_in(member_or_null(answer.value(), "result"), "TTL");
  // etcd answers a lease it does not know (expired, revoked) with a TTL of 0.
  if (ttl <= 0) return error(errc::not_found, "lease " + std::to_string(lease) + " has expired or was revoked");
  return std::chrono::milliseconds(ttl * 1000);
}

status etcd_control_plane::revoke(lease_id lease) {
  auto answer = self_->call("/v3/lease/revoke", "{\"ID\":\"" + std::to_string(lease) + "\"}", true);
  if (!answer) return answer.error();
  return {};
}

result<transaction_result> etcd_control_plane::commit(const transaction& request) {
  rapidjson::StringBuffer buffer;
  json_writer out(buffer);
  out.StartObject();
  out.Key("compare");
  out.StartArray();
  for (const auto& condition : request.compares) write_compare(out, condition);
  out.EndArray();
  out.Key("success");
  out.StartArray();
  for (const auto& op : request.success) write_operation(out, op);
  out.EndArray();
  out.Key("failure");
  out.StartArray();
  for (const auto& op : request.failure) write_operation(out, op);
  out.EndArray();
  out.EndObject();
  auto answer = self_->call("/v3/kv/txn", buffer.GetString(), false);
  if (!answer) return answer.error();
  const auto& document = answer.value();
  transaction_result outcome;
  outcome.succeeded = flag_in(document, "succeeded");
  outcome.at = number_in(member_or_null(document, "header"), "revision");
  const auto& branch = outcome.succeeded ? request.success : request.failure;
  const auto& responses = member_or_null(document, "responses");
  for (std::size_t index = 0; index < branch.size(); ++index) {
    const rapidjson::Value* response = nullptr;
    if (responses.IsArray() && index < responses.Size()) response = &responses[rapidjson::SizeType(index)];
    operation_result result;
    if (response != nullptr) {
      if (branch[index].type == operation::kind::range) result.found = kvs_of(member_or_null(*response, "response_range"));
      if (branch[index].type == operation::kind::erase) result.deleted = number_in(member_or_null(*response, "response_delete_range"), "deleted");
    }
    outcome.results.push_back(std::move(result));
  }
  return outcome;
}

result<std::vector<key_value>> etcd_control_plane::range(const key_range& keys, revision at) {
  rapidjson::StringBuffer buffer;
  json_writer out(buffer);
  out.StartObject();
  write_range(out, keys);
  if (at > 0) write_number(out, "revision", at);
  out.EndObject();
  auto answer = self_->call("/v3/kv/range", buffer.GetString(), true);
  if (!answer) return answer.error();
  return kvs_of(answer.value());
}

result<revision> etcd_control_plane::current_revision() {
  // Any read answers with the store's revision in its header; this one counts one key.
  auto answer = self_->call("/v3/kv/range", "{\"key\":\"" + base64("\x01rml-revision") + "\",\"count_only\":true}", true);
  if (!answer) return answer.error();
  return number_in(member_or_null(answer.value(), "header"), "revision");
}

status etcd_control_plane::compact(revision up_to) {
  auto answer = self_->call("/v3/kv/compaction", "{\"revision\":\"" + std::to_string(up_to) + "\",\"physical\":true}", true);
  if (!answer) return answer.error();
  return {};
}

result<watch_id> etcd_control_plane::watch(const key_range& keys, revision from, watch_callback deliver) {
  if (from == 0) {
    // "From the next revision" is fixed now, so a watch that must reconnect misses nothing.
    auto now = current_revision();
    if (!now) return now.error();
    from = now.value() + 1;
  }
  std::size_t target = 0;
  {
    std::lock_guard lock(self_->calls);
    target = self_->current;  // the endpoint that answered last
  }
  auto watcher = std::make_shared<implementation::watcher>();
  watcher->stream = std::make_unique<connection>(self_->endpoints[target], self_->tls);
  std::lock_guard lock(self_->watches);
  const watch_id id = self_->next_watch++;
  self_->watchers.emplace(id, watcher);
  watcher->thread = std::thread([self = self_.get(), watcher, target, keys, from, deliver = std::move(deliver)]() mutable {
    self->run_watch(watcher, target, keys.key, keys.end, from, std::move(deliver));
  });
  return id;
}

void etcd_control_plane::cancel(watch_id watch) {
  std::shared_ptr<implementation::watcher> watcher;
  {
    std::lock_guard lock(self_->watches);
    auto found = self_->watchers.find(watch);
    if (found == self_->watchers.end()) return;
    watcher = found->second;
    self_->watchers.erase(found);
  }
  {
    std::lock_guard lock(watcher->sleeping);
    watcher->stopped.store(true);
  }
  watcher->wake.notify_all();
  watcher->stream->close_from_elsewhere();
  if (watcher->thread.get_id() == std::this_thread::get_id()) {
    std::lock_guard lock(self_->watches);
    self_->finished.push_back(std::move(watcher));  // cancelled from its own callback
    return;
  }
  if (watcher->thread.joinable()) watcher->thread.join();
}

}  // namespace rml::control

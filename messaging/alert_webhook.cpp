#include "messaging/alert_webhook.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>

#include <cstdio>
#include <optional>

namespace rml::messaging {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

result<webhook_url> parse_webhook_url(const std::string& url) {
  webhook_url parsed;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    parsed.tls = true;
    rest = url.substr(8);
  } else {
    return error(errc::invalid_argument, "webhook URL '" + url + "': expected http://HOST[:PORT][/PATH] or https://…");
  }
  const std::size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  parsed.target = slash == std::string::npos ? "/" : rest.substr(slash);
  const std::size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']') == std::string::npos) {
    parsed.host = authority.substr(0, colon);
    parsed.port = authority.substr(colon + 1);
  } else {
    parsed.host = authority;
    parsed.port = parsed.tls ? "443" : "80";
  }
  if (parsed.host.empty()) return error(errc::invalid_argument, "webhook URL '" + url + "': no host");
  if (parsed.port.empty() || parsed.port.size() > 5 || parsed.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(parsed.port) == 0 || std::stoul(parsed.port) > 65535) {
    return error(errc::invalid_argument, "webhook URL '" + url + "': port '" + parsed.port + "' is not in 1..65535");
  }
  for (char c : parsed.target) {
    if (c <= ' ' || c == 0x7f) return error(errc::invalid_argument, "webhook URL '" + url + "': the path holds a space or control character");
  }
  return parsed;
}

alert_webhook::alert_webhook(options settings, std::shared_ptr<metrics::registry> metrics) : options_(std::move(settings)) {
  auto parsed = parse_webhook_url(options_.url);
  RML_ASSERT(parsed.ok(), "alert_webhook: URL not checked");
  url_ = std::move(parsed.value());
  const std::string help = "Alerts POSTed to the webhook, by outcome";
  sent_ = &metrics->get_counter("rml_alerts_total", help, {{"outcome", "sent"}});
  failed_ = &metrics->get_counter("rml_alerts_total", help, {{"outcome", "failed"}});
  dropped_ = &metrics->get_counter("rml_alerts_total", help, {{"outcome", "dropped"}});
  sender_ = std::thread([this] { run(); });
}

alert_webhook::~alert_webhook() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  sender_.join();
}

bool alert_webhook::post(std::string json_body) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= options_.queue_max) {
      dropped_->add();
      return false;
    }
    queue_.push_back(std::move(json_body));
  }
  wake_.notify_one();
  return true;
}

void alert_webhook::run() {
  while (true) {
    std::string body;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        dropped_->add(double(queue_.size()));
        return;
      }
      body = std::move(queue_.front());
      queue_.pop_front();
    }
    auto outcome = send_one(body);
    if (!outcome) outcome = send_one(body);  // once more: a receiver restarting, a dropped connection
    if (outcome) {
      sent_->add();
    } else {
      failed_->add();
      std::fprintf(stderr, "rml: alert webhook %s: %s\n", options_.url.c_str(), outcome.error().message().c_str());
    }
  }
}

namespace {
/// One POST on `stream` (plain or TLS, connected): written, then the response read; all
/// within the stream's expiry.
template <class Stream>
void exchange(Stream& stream, http::request<http::string_body>& request, beast::flat_buffer& buffer, http::response<http::string_body>& response,
              beast::error_code& failure) {
  http::async_write(stream, request, [&](beast::error_code error, std::size_t) {
    if (error) {
      failure = error;
      return;
    }
    http::async_read(stream, buffer, response, [&](beast::error_code read_error, std::size_t) { failure = read_error; });
  });
}
}  // namespace

status alert_webhook::send_one(const std::string& body) {
  net::io_context io;
  net::ip::tcp::resolver resolver(io);
  beast::tcp_stream plain(io);
  std::optional<net::ssl::context> tls_context;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  http::request<http::string_body> request{http::verb::post, url_.target, 11};
  request.set(http::field::host, url_.host);
  request.set(http::field::user_agent, "rml");
  request.set(http::field::content_type, "application/json");
  request.body() = body;
  request.prepare_payload();
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  beast::error_code failure;
  std::string stage = "resolve";
  const auto deadline = options_.timeout;
  if (url_.tls) {
    tls_context.emplace(net::ssl::context::tls_client);
    tls_context->set_default_verify_paths();
    tls_context->set_verify_mode(net::ssl::verify_peer);
    secure.emplace(io, *tls_context);
    SSL_set_tlsext_host_name(secure->native_handle(), url_.host.c_str());
    secure->set_verify_callback(net::ssl::host_name_verification(url_.host));
  }
  beast::tcp_stream& lowest = url_.tls ? beast::get_lowest_layer(*secure) : plain;
  lowest.expires_after(deadline);
  resolver.async_resolve(url_.host, url_.port, [&](beast::error_code error, net::ip::tcp::resolver::results_type endpoints) {
    if (error) {
      failure = error;
      return;
    }
    stage = "connect";
    lowest.async_connect(endpoints, [&](beast::error_code connect_error, const net::ip::tcp::endpoint&) {
      if (connect_error) {
        failure = connect_error;
        return;
      }
      if (!url_.tls) {
        stage = "exchange";
        return exchange(plain, request, buffer, response, failure);
      }
      stage = "TLS handshake";
      secure->async_handshake(net::ssl::stream_base::client, [&](beast::error_code handshake_error) {
        if (handshake_error) {
          failure = handshake_error;
          return;
        }
        stage = "exchange";
        exchange(*secure, request, buffer, response, failure);
      });
    });
  });
  // The resolver has no expiry of its own: the whole exchange is bounded here.
  io.run_for(deadline + std::chrono::milliseconds(100));
  if (!io.stopped()) return error(errc::deadline_exceeded, "no answer within " + std::to_string(deadline.count()) + " ms (" + stage + ")");
  if (failure) return error(errc::io_error, stage + " failed: " + failure.message());
  const unsigned code = response.result_int();
  if (code < 200 || code >= 300) return error(errc::io_error, "answered HTTP " + std::to_string(code));
  return {};
}

}  // namespace rml::messaging

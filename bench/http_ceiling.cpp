// The HTTP ceiling of the serving benchmark (issue 10): a minimal Beast server on one event
// loop thread (rml's default --http-threads) that reads each KServe V2 request like rml's
// endpoint does — keep-alive, pipelined, one parser per request — and answers every one with
// a fixed 200 response shaped like rml's binary answer for one Fashion-MNIST row (a JSON header
// naming two outputs, then 10 probabilities and 1 class as raw bytes), with no serving behind
// it. `rml loadgen --address http://127.0.0.1:PORT --binary` measures it like rml.
// Usage: rml_http_ceiling [--port 19801] — prints "listening on PORT", runs until killed.
#include <CLI/CLI.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {
std::string fixed_body(std::size_t& header_bytes) {
  const std::string header =
      R"({"model_name":"mlp","model_version":"1","id":"1","outputs":[{"name":"probabilities","datatype":"FP32","shape":[1,10],)"
      R"("parameters":{"binary_data_size":40}},{"name":"top_classes","datatype":"INT32","shape":[1,1],"parameters":{"binary_data_size":4}}]})";
  header_bytes = header.size();
  std::string body = header;
  body.append(44, '\x01');
  return body;
}

class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(tcp::socket socket, std::shared_ptr<const http::response<http::string_body>> answer)
      : stream_(std::move(socket)), answer_(std::move(answer)) {}
  void read() {
    request_ = {};
    http::async_read(stream_, buffer_, request_, [self = shared_from_this()](beast::error_code failure, std::size_t) {
      if (failure) return;
      http::async_write(self->stream_, *self->answer_, [self](beast::error_code failure, std::size_t) {
        if (!failure) self->read();
      });
    });
  }

 private:
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  std::shared_ptr<const http::response<http::string_body>> answer_;
};

void accept(tcp::acceptor& acceptor, const std::shared_ptr<const http::response<http::string_body>>& answer) {
  acceptor.async_accept([&acceptor, answer](beast::error_code failure, tcp::socket socket) {
    if (!failure) std::make_shared<connection>(std::move(socket), answer)->read();
    accept(acceptor, answer);
  });
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"minimal HTTP server: the ceiling of rml's HTTP serving"};
  unsigned short port = 19801;
  app.add_option("--port", port);
  CLI11_PARSE(app, argc, argv);
  std::size_t header_bytes = 0;
  auto answer = std::make_shared<http::response<http::string_body>>(http::status::ok, 11);
  answer->set(http::field::content_type, "application/octet-stream");
  answer->body() = fixed_body(header_bytes);
  answer->set("Inference-Header-Content-Length", std::to_string(header_bytes));
  answer->keep_alive(true);
  answer->prepare_payload();
  net::io_context io{1};
  tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), port});
  net::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](beast::error_code, int) { io.stop(); });
  accept(acceptor, answer);
  std::printf("listening on %u\n", unsigned(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  io.run();
  return 0;
}

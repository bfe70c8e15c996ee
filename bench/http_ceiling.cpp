// The HTTP ceiling of the serving benchmark (issue 10): a minimal Beast server on one event
// loop thread (rml's default --http-threads) that reads each KServe V2 request like rml's
// endpoint does — keep-alive, pipelined, one parser per request — and answers every one with
// a fixed 200 response shaped like rml's binary answer for one Fashion-MNIST row (a JSON header
// naming two outputs, then 10 probabilities and 1 class as raw bytes), with no serving behind
// it. `rml loadgen --address http://127.0.0.1:PORT --binary` measures it like rml.
// With `--burst` it reads the way rml's endpoint does since it parses pipelined bursts: every
// complete request a read brought is parsed at once, and their answers go out in one
// gathered write — the ceiling for rml's endpoint is the faster of the two.
// Usage: rml_http_ceiling [--port 19801] [--burst] — prints "listening on PORT", runs until
// killed.
#include <CLI/CLI.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>
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

/// Reads whatever arrived, answers every complete request in it with one write.
class burst_connection : public std::enable_shared_from_this<burst_connection> {
 public:
  burst_connection(tcp::socket socket, std::shared_ptr<const std::string> answer) : stream_(std::move(socket)), answer_(std::move(answer)) {}
  void read() {
    stream_.async_read_some(buffer_.prepare(64 * 1024), [self = shared_from_this()](beast::error_code failure, std::size_t bytes) {
      if (failure) return;
      self->buffer_.commit(bytes);
      std::size_t answers = 0;
      while (self->buffer_.size() > 0) {
        if (!self->parser_) {
          self->parser_.emplace();
          self->parser_->eager(true);
        }
        beast::error_code parsed;
        self->buffer_.consume(self->parser_->put(self->buffer_.data(), parsed));
        if (parsed == http::error::need_more) break;
        if (parsed) return;
        if (self->parser_->is_done()) {
          self->parser_.reset();
          ++answers;
        }
      }
      if (answers == 0) return self->read();
      self->out_.assign(answers, net::buffer(*self->answer_));
      net::async_write(self->stream_, self->out_, [self](beast::error_code failure, std::size_t) {
        if (!failure) self->read();
      });
    });
  }

 private:
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::vector<net::const_buffer> out_;
  std::shared_ptr<const std::string> answer_;
};

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

void accept(tcp::acceptor& acceptor, const std::shared_ptr<const http::response<http::string_body>>& answer,
            const std::shared_ptr<const std::string>& answer_bytes) {
  acceptor.async_accept([&acceptor, answer, answer_bytes](beast::error_code failure, tcp::socket socket) {
    if (!failure && answer_bytes) std::make_shared<burst_connection>(std::move(socket), answer_bytes)->read();
    else if (!failure) std::make_shared<connection>(std::move(socket), answer)->read();
    accept(acceptor, answer, answer_bytes);
  });
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"minimal HTTP server: the ceiling of rml's HTTP serving"};
  unsigned short port = 19801;
  bool burst = false;
  app.add_option("--port", port);
  app.add_flag("--burst", burst, "parse every request a read brought and answer them in one write");
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
  std::shared_ptr<const std::string> answer_bytes;
  if (burst) {
    std::ostringstream serialized;
    serialized << *answer;
    answer_bytes = std::make_shared<const std::string>(serialized.str());
  }
  accept(acceptor, answer, answer_bytes);
  std::printf("listening on %u\n", unsigned(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  io.run();
  return 0;
}

// `rml predict`: a small client of the prediction socket. Sends Fashion-MNIST test images
// (raw pixels: the served model's feature pipeline scales them) and prints each prediction.
#include <zmq.hpp>

#include <chrono>
#include <cstdio>

#include "apps/rml/commands.hpp"
#include "compute/data/dataset.hpp"
#include "messaging/wire.hpp"

namespace rml::app {
namespace {
struct predict_options {
  std::string address = "tcp://127.0.0.1:5556";
  std::int64_t first = 0;
  std::int64_t count = 10;
  std::uint32_t top_k = 3;
  std::uint32_t timeout_ms = 1000;
  std::string dataset_dir = data::default_fashion_mnist_directory();
};

const char* const fashion_classes[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                       "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

int predict(const predict_options& options) {
  auto test = data::load_fashion_mnist(options.dataset_dir, data::split::test, 1.0f);
  if (!test) return std::fprintf(stderr, "rml predict: %s\n", test.error().message().c_str()), 1;
  if (options.first < 0 || options.first + options.count > test->rows()) {
    return std::fprintf(stderr, "rml predict: images [%lld, %lld) outside the test set's %lld\n", (long long)options.first,
                        (long long)(options.first + options.count), (long long)test->rows()),
           2;
  }
  zmq::context_t context;
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::rcvtimeo, int(options.timeout_ms) + 2000);
  socket.connect(options.address);
  int correct = 0;
  for (std::int64_t index = options.first; index < options.first + options.count; ++index) {
    messaging::predict_request request;
    request.request_id = std::uint64_t(index);
    request.rows = 1;
    request.top_k = options.top_k;
    const float* pixels = test->features.data() + index * 784;
    request.features.values().assign(pixels, pixels + 784);
    const auto frame = messaging::wire::encode_predict_request(request, 784, options.timeout_ms);
    const auto sent_at = std::chrono::steady_clock::now();
    socket.send(zmq::buffer(frame.data(), frame.size()));
    zmq::message_t answer;
    if (!socket.recv(answer)) {
      return std::fprintf(stderr, "rml predict: no answer from %s (is `rml run` serving there?)\n", options.address.c_str()), 1;
    }
    const double micros = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - sent_at).count();
    std::span<const std::byte> bytes(static_cast<const std::byte*>(answer.data()), answer.size());
    if (auto failure = messaging::wire::decode_error(bytes)) {
      std::printf("image %lld: error %s: %s\n", (long long)index, to_string(failure->code), failure->message.c_str());
      continue;
    }
    auto reply = messaging::wire::decode_predict_reply(bytes);
    if (!reply) return std::fprintf(stderr, "rml predict: %s\n", reply.error().message().c_str()), 1;
    const int label = test->labels[std::size_t(index)];
    const int best = reply->top_classes.front();
    correct += best == label;
    std::printf("image %lld: %-11s p=%.3f (label %-11s) model v%llu, %.0f µs\n", (long long)index, fashion_classes[best],
                reply->probabilities.values[std::size_t(best)], fashion_classes[label],
                (unsigned long long)reply->model_version, micros);
  }
  std::printf("%d of %lld correct\n", correct, (long long)options.count);
  return 0;
}
}  // namespace

void register_predict_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<predict_options>();
  CLI::App* command = app.add_subcommand("predict", "Ask a running rml for predictions of Fashion-MNIST test images");
  command->add_option("--address", options->address, "The prediction socket")->capture_default_str();
  command->add_option("--first", options->first, "First test image")->capture_default_str();
  command->add_option("--count", options->count, "How many images")->check(CLI::Range(1, 10000))->capture_default_str();
  command->add_option("--top-k", options->top_k, "Classes per answer")->check(CLI::Range(1, 10))->capture_default_str();
  command->add_option("--timeout-ms", options->timeout_ms, "Deadline of each request")->capture_default_str();
  command->add_option("--dataset-dir", options->dataset_dir, "Directory of the Fashion-MNIST IDX files")->capture_default_str();
  command->callback([options, &exit_code] { exit_code = predict(*options); });
}

}  // namespace rml::app

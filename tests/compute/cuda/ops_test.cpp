// Every op of the CUDA backend against the CPU backend on random inputs (float32, TF32 off),
// with a stated tolerance per op as a relative error ‖cuda − cpu‖ / ‖cpu‖; outputs are
// poisoned with NaN first so an element left unwritten fails. Gradient checks: the CUDA
// backward ops against central differences of the double-precision references, and a
// whole tape's parameter gradients against the CPU tape's. Each case skips, saying so,
// where there is no GPU.
#include <algorithm>
#include <limits>
#include <numeric>

#include "compute/autodiff.hpp"
#include "compute/nn/inference.hpp"
#include "compute/nn/optimizer.hpp"
#include "compute/nn/training.hpp"
#include "tests/compute/cuda/gpu.hpp"
#include "tests/compute/reference.hpp"

using namespace rml;
using namespace rml::test;

namespace {
constexpr int trials = 5;
// Both sides sum float32 products, in different orders (and cuDNN may pick an FFT or
// Winograd convolution): these bound the difference, not each side's error.
constexpr double gemm_tolerance = 1e-5;
constexpr double conv_tolerance = 1e-4;
constexpr double elementwise_tolerance = 1e-6;
constexpr double transcendental_tolerance = 1e-5;
// Against double-precision central differences (the CPU backend's tests use the same).
constexpr double gradient_tolerance = 2e-3;
// A whole step's weight gradients against the CPU's: cuDNN's deterministic weight-gradient
// algorithms include FFT ones, whose rounding differs more (4e-4 seen on LeNet's first
// convolution at batch 32, H200, cuDNN 9.19).
constexpr double step_gradient_tolerance = 1e-3;

tensor random_tensor(std::mt19937_64& generator, const tensor_shape& shape, double low = -1, double high = 1) {
  return to_tensor(random_values(generator, std::size_t(shape.numel()), low, high), shape);
}

/// One architecture, seed and SGD on the CPU and on the GPU, each trained by its session.
struct paired_sessions {
  paired_sessions(backend& cpu, backend& gpu, const char* architecture, std::uint64_t seed, nn::sgd_options options)
      : cpu_model(nn::make_architecture(architecture).value()), gpu_model(nn::make_architecture(architecture).value()) {
    cpu_model.initialize(seed);
    gpu_model.initialize(seed);
    gpu_model.place_on(gpu);
    cpu_update = std::make_unique<nn::sgd>(cpu, cpu_model.parameters(), options);
    gpu_update = std::make_unique<nn::sgd>(gpu, gpu_model.parameters(), options);
    cpu_session = std::make_unique<nn::classifier_session>(cpu_model, *cpu_update, cpu);
    gpu_session = std::make_unique<nn::classifier_session>(gpu_model, *gpu_update, gpu);
  }
  nn::sequential cpu_model, gpu_model;
  std::unique_ptr<nn::sgd> cpu_update, gpu_update;
  std::unique_ptr<nn::classifier_session> cpu_session, gpu_session;
};
}  // namespace

TEST_CASE("cuda linear forward and backward match the cpu backend") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  for (int trial = 0; trial < trials; ++trial) {
    // The first two trials take one row (a matrix-vector product), with and without bias.
    const std::int64_t m = trial < 2 ? 1 : random_size(generator, 1, 300), k = random_size(generator, 1, 800),
                       n = random_size(generator, 1, 300);
    const bool with_bias = trial % 2 == 0;
    CAPTURE(m, k, n, with_bias);
    tensor x = random_tensor(generator, {m, k}), w = random_tensor(generator, {n, k});
    tensor b = with_bias ? random_tensor(generator, {n}) : tensor();
    tensor dy = random_tensor(generator, {m, n});
    tensor y = tensor::empty({m, n}), dx = tensor::empty({m, k}), dw = tensor::empty({n, k}), db = tensor::empty({n});
    cpu->linear_forward(x, w, b, y);
    cpu->linear_backward(x, w, dy, &dx, &dw, &db);

    tensor gx = on_device(*gpu, x), gw = on_device(*gpu, w), gb = with_bias ? on_device(*gpu, b) : tensor();
    tensor gdy = on_device(*gpu, dy);
    tensor gy = poisoned(*gpu, y.shape()), gdx = poisoned(*gpu, dx.shape()), gdw = poisoned(*gpu, dw.shape()),
           gdb = poisoned(*gpu, db.shape());
    gpu->linear_forward(gx, gw, gb, gy);
    gpu->linear_backward(gx, gw, gdy, &gdx, &gdw, &gdb);
    RML_REQUIRE_CLOSE(*gpu, gy, y, gemm_tolerance, "linear y");
    RML_REQUIRE_CLOSE(*gpu, gdx, dx, gemm_tolerance, "linear dx");
    RML_REQUIRE_CLOSE(*gpu, gdw, dw, gemm_tolerance, "linear dw");
    RML_REQUIRE_CLOSE(*gpu, gdb, db, gemm_tolerance, "linear db");
  }
}

TEST_CASE("cuda linear and conv2d gradients match central differences") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto generator = seeded_generator();
  {
    const std::int64_t m = 3, k = 7, n = 5;
    const values x = random_values(generator, m * k), w = random_values(generator, n * k),
                 b = random_values(generator, n), r = random_values(generator, m * n);
    tensor dx = poisoned(*gpu, {m, k}), dw = poisoned(*gpu, {n, k}), db = poisoned(*gpu, {n});
    gpu->linear_backward(on_device(*gpu, to_tensor(x, {m, k})), on_device(*gpu, to_tensor(w, {n, k})),
                         on_device(*gpu, to_tensor(r, {m, n})), &dx, &dw, &db);
    require_close(on_host(*gpu, dx), numeric_gradient([&](const values& v) { return dot(linear_ref(v, w, b, m, k, n), r); }, x),
                  gradient_tolerance, "linear dx");
    require_close(on_host(*gpu, dw), numeric_gradient([&](const values& v) { return dot(linear_ref(x, v, b, m, k, n), r); }, w),
                  gradient_tolerance, "linear dw");
    require_close(on_host(*gpu, db), numeric_gradient([&](const values& v) { return dot(linear_ref(x, w, v, m, k, n), r); }, b),
                  gradient_tolerance, "linear db");
  }
  {
    conv_shape s{2, 2, 7, 6, 3, 3, 3, 1, 1};
    const values x = random_values(generator, std::size_t(s.n * s.c * s.h * s.w));
    const values w = random_values(generator, std::size_t(s.o * s.c * s.kh * s.kw));
    const values b = random_values(generator, std::size_t(s.o));
    const values r = random_values(generator, std::size_t(s.n * s.o * s.oh() * s.ow()));
    const conv2d_params params{s.stride, s.padding};
    tensor dx = poisoned(*gpu, {s.n, s.c, s.h, s.w}), dw = poisoned(*gpu, {s.o, s.c, s.kh, s.kw}),
           db = poisoned(*gpu, {s.o});
    gpu->conv2d_backward(on_device(*gpu, to_tensor(x, dx.shape())), on_device(*gpu, to_tensor(w, dw.shape())),
                         on_device(*gpu, to_tensor(r, {s.n, s.o, s.oh(), s.ow()})), params, &dx, &dw, &db);
    require_close(on_host(*gpu, dx), numeric_gradient([&](const values& v) { return dot(conv2d_ref(v, w, b, s), r); }, x),
                  gradient_tolerance, "conv2d dx");
    require_close(on_host(*gpu, dw), numeric_gradient([&](const values& v) { return dot(conv2d_ref(x, v, b, s), r); }, w),
                  gradient_tolerance, "conv2d dw");
    require_close(on_host(*gpu, db), numeric_gradient([&](const values& v) { return dot(conv2d_ref(x, w, v, s), r); }, b),
                  gradient_tolerance, "conv2d db");
  }
}

TEST_CASE("cuda conv2d forward and backward match the cpu backend with stride and padding") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  for (int trial = 0; trial < trials; ++trial) {
    const std::int64_t n = random_size(generator, 1, 64), c = random_size(generator, 1, 8),
                       h = random_size(generator, 8, 30), width = random_size(generator, 8, 30),
                       o = random_size(generator, 1, 16), kernel = random_size(generator, 1, 5);
    const conv2d_params params{int(random_size(generator, 1, 2)), int(random_size(generator, 0, 2))};
    CAPTURE(n, c, h, width, o, kernel, params.stride, params.padding);
    tensor x = random_tensor(generator, {n, c, h, width}), w = random_tensor(generator, {o, c, kernel, kernel});
    tensor b = random_tensor(generator, {o});
    const tensor_shape out{n, o, window_output_size(h, kernel, params.stride, params.padding),
                           window_output_size(width, kernel, params.stride, params.padding)};
    tensor dy = random_tensor(generator, out);
    tensor y = tensor::empty(out), dx = tensor::empty(x.shape()), dw = tensor::empty(w.shape()), db = tensor::empty({o});
    cpu->conv2d_forward(x, w, b, params, y);
    cpu->conv2d_backward(x, w, dy, params, &dx, &dw, &db);

    tensor gx = on_device(*gpu, x), gw = on_device(*gpu, w);
    tensor gy = poisoned(*gpu, out), gdx = poisoned(*gpu, x.shape()), gdw = poisoned(*gpu, w.shape()),
           gdb = poisoned(*gpu, {o});
    gpu->conv2d_forward(gx, gw, on_device(*gpu, b), params, gy);
    gpu->conv2d_backward(gx, gw, on_device(*gpu, dy), params, &gdx, &gdw, &gdb);
    RML_REQUIRE_CLOSE(*gpu, gy, y, conv_tolerance, "conv2d y");
    RML_REQUIRE_CLOSE(*gpu, gdx, dx, conv_tolerance, "conv2d dx");
    RML_REQUIRE_CLOSE(*gpu, gdw, dw, conv_tolerance, "conv2d dw");
    RML_REQUIRE_CLOSE(*gpu, gdb, db, conv_tolerance, "conv2d db");

    // No bias, and the weight gradient alone.
    tensor y_plain = tensor::empty(out), gy_plain = poisoned(*gpu, out);
    cpu->conv2d_forward(x, w, tensor(), params, y_plain);
    gpu->conv2d_forward(gx, gw, tensor(), params, gy_plain);
    RML_REQUIRE_CLOSE(*gpu, gy_plain, y_plain, conv_tolerance, "conv2d y without bias");
    tensor gdw_alone = poisoned(*gpu, w.shape());
    gpu->conv2d_backward(gx, gw, on_device(*gpu, dy), params, nullptr, &gdw_alone, nullptr);
    RML_REQUIRE_CLOSE(*gpu, gdw_alone, dw, conv_tolerance, "conv2d dw alone");
  }
}

TEST_CASE("cuda max_pool2d forward and backward match the cpu backend") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  for (int trial = 0; trial < trials; ++trial) {
    const std::int64_t n = random_size(generator, 1, 32), c = random_size(generator, 1, 8),
                       h = random_size(generator, 4, 28), w = random_size(generator, 4, 28);
    const pool2d_params params{int(random_size(generator, 2, 3)), int(random_size(generator, 1, 3))};
    CAPTURE(n, c, h, w, params.kernel, params.stride);
    // Distinct values: which element is a window's maximum is never a tie.
    values distinct(std::size_t(n * c * h * w));
    std::iota(distinct.begin(), distinct.end(), 0.0);
    std::shuffle(distinct.begin(), distinct.end(), generator);
    for (double& v : distinct) v *= 1e-3;
    tensor x = to_tensor(distinct, {n, c, h, w});
    const tensor_shape out{n, c, window_output_size(h, params.kernel, params.stride, 0),
                           window_output_size(w, params.kernel, params.stride, 0)};
    tensor dy = random_tensor(generator, out);
    tensor y = tensor::empty(out), workspace, dx = tensor::empty(x.shape());
    cpu->max_pool2d_forward(x, params, y, &workspace);
    cpu->max_pool2d_backward(x, dy, workspace, params, dx);

    tensor gx = on_device(*gpu, x), gy = poisoned(*gpu, out), gworkspace, gdx = poisoned(*gpu, x.shape());
    gpu->max_pool2d_forward(gx, params, gy, &gworkspace);
    gpu->max_pool2d_backward(gx, on_device(*gpu, dy), gworkspace, params, gdx);
    RML_REQUIRE_CLOSE(*gpu, gy, y, 0.0, "max_pool2d y");
    RML_REQUIRE_CLOSE(*gpu, gdx, dx, elementwise_tolerance, "max_pool2d dx");
  }
}

TEST_CASE("cuda activations forward and backward match the cpu backend") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  for (activation_kind kind : {activation_kind::relu, activation_kind::tanh, activation_kind::sigmoid}) {
    CAPTURE(to_string(kind));
    const tensor_shape shape{random_size(generator, 1, 200), random_size(generator, 1, 700)};
    tensor x = random_tensor(generator, shape, -4, 4), dy = random_tensor(generator, shape);
    tensor y = tensor::empty(shape), dx = tensor::empty(shape);
    cpu->activation_forward(kind, x, y);
    cpu->activation_backward(kind, y, dy, dx);
    tensor gy = poisoned(*gpu, shape), gdx = poisoned(*gpu, shape);
    gpu->activation_forward(kind, on_device(*gpu, x), gy);
    gpu->activation_backward(kind, gy, on_device(*gpu, dy), gdx);
    const double tolerance = kind == activation_kind::relu ? 0.0 : transcendental_tolerance;
    RML_REQUIRE_CLOSE(*gpu, gy, y, tolerance, "activation y");
    RML_REQUIRE_CLOSE(*gpu, gdx, dx, tolerance, "activation dx");
  }
}

TEST_CASE("cuda softmax and its cross-entropy match the cpu backend, stably") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  for (int trial = 0; trial < trials; ++trial) {
    const std::int64_t rows = random_size(generator, 1, 600), columns = random_size(generator, 2, 100);
    CAPTURE(rows, columns);
    // Logits up to ±60: exp overflows float32 unless the row maximum is taken out first.
    tensor logits = random_tensor(generator, {rows, columns}, -60, 60);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(rows));
    for (auto& label : labels) label = std::int32_t(random_size(generator, 0, columns - 1));
    tensor probabilities = tensor::empty(logits.shape()), dlogits = tensor::empty(logits.shape());
    tensor plain = tensor::empty(logits.shape());
    const float loss = cross_entropy_loss(*cpu, logits, labels, probabilities);
    cross_entropy_backward(*cpu, probabilities, labels, 0.5f, dlogits);
    cpu->softmax_forward(logits, plain);

    tensor glogits = on_device(*gpu, logits), gprobabilities = poisoned(*gpu, logits.shape()),
           gdlogits = poisoned(*gpu, logits.shape()), gplain = poisoned(*gpu, logits.shape());
    const float gpu_loss = cross_entropy_loss(*gpu, glogits, labels, gprobabilities);
    cross_entropy_backward(*gpu, gprobabilities, labels, 0.5f, gdlogits);
    gpu->softmax_forward(glogits, gplain);
    REQUIRE(std::isfinite(gpu_loss));
    REQUIRE(gpu_loss == Approx(loss).epsilon(transcendental_tolerance));
    RML_REQUIRE_CLOSE(*gpu, gprobabilities, probabilities, transcendental_tolerance, "softmax cross-entropy probabilities");
    RML_REQUIRE_CLOSE(*gpu, gdlogits, dlogits, transcendental_tolerance, "softmax cross-entropy dlogits");
    RML_REQUIRE_CLOSE(*gpu, gplain, plain, transcendental_tolerance, "softmax");

    std::vector<std::int32_t> classes(static_cast<std::size_t>(rows)), gpu_classes(static_cast<std::size_t>(rows));
    argmax_to_host(*cpu, logits, classes);
    argmax_to_host(*gpu, glogits, gpu_classes);
    REQUIRE(gpu_classes == classes);
  }
  // A label outside the classes gives a NaN loss on the device, not a stray read.
  tensor logits = on_device(*gpu, tensor::filled({2, 3}, 0.5f)), probabilities = gpu->allocate({2, 3});
  const std::int32_t bad[] = {1, 7};
  REQUIRE(std::isnan(cross_entropy_loss(*gpu, logits, bad, probabilities)));
}

TEST_CASE("cuda mse, add, scale, sums and copies match the cpu backend") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  const tensor_shape shape{random_size(generator, 1, 300), random_size(generator, 1, 500)};
  tensor a = random_tensor(generator, shape), b = random_tensor(generator, shape);
  tensor ga = on_device(*gpu, a), gb = on_device(*gpu, b);
  REQUIRE(mse_loss(*gpu, ga, gb) == Approx(mse_loss(*cpu, a, b)).epsilon(1e-6));
  tensor d = tensor::empty(shape), gd = poisoned(*gpu, shape);
  cpu->mse_backward(a, b, 3.0f, d);
  gpu->mse_backward(ga, gb, 3.0f, gd);
  RML_REQUIRE_CLOSE(*gpu, gd, d, elementwise_tolerance, "mse gradient");

  tensor sum = tensor::empty(shape), gsum = poisoned(*gpu, shape);
  cpu->add(a, b, sum);
  gpu->add(ga, gb, gsum);
  RML_REQUIRE_CLOSE(*gpu, gsum, sum, 0.0, "add");
  gpu->add(gsum, gb, gsum);  // out aliasing an operand
  cpu->add(sum, b, sum);
  RML_REQUIRE_CLOSE(*gpu, gsum, sum, 0.0, "add in place");

  REQUIRE(sum_of_squares(*gpu, ga) == Approx(sum_of_squares(*cpu, a)).epsilon(1e-6));
  cpu->scale(a, -0.25f);
  gpu->scale(ga, -0.25f);
  RML_REQUIRE_CLOSE(*gpu, ga, a, 0.0, "scale");

  tensor filled = gpu->allocate(shape);
  gpu->fill(filled, 2.5f);
  RML_REQUIRE_CLOSE(*gpu, filled, tensor::filled(shape, 2.5f), 0.0, "fill");
  tensor device_copy = poisoned(*gpu, shape);
  gpu->copy(gb, device_copy);
  RML_REQUIRE_CLOSE(*gpu, device_copy, b, 0.0, "device-to-device copy");
}

TEST_CASE("cuda sgd and adam updates match the cpu backend over several steps") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  const tensor_shape shape{random_size(generator, 1, 5000)};
  tensor p = random_tensor(generator, shape), v = tensor::zeros(shape);
  tensor ap = p.clone(), m1 = tensor::zeros(shape), m2 = tensor::zeros(shape);
  tensor gp = on_device(*gpu, p), gv = on_device(*gpu, v), gap = on_device(*gpu, ap), gm1 = on_device(*gpu, m1),
         gm2 = on_device(*gpu, m2);
  for (std::int64_t step = 1; step <= 5; ++step) {
    tensor g = random_tensor(generator, shape), gg = on_device(*gpu, g);
    cpu->sgd_update(p, g, v, 0.05f, 0.9f, 1e-4f);
    gpu->sgd_update(gp, gg, gv, 0.05f, 0.9f, 1e-4f);
    cpu->adam_update(ap, g, m1, m2, step, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f);
    gpu->adam_update(gap, gg, gm1, gm2, step, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f);
  }
  RML_REQUIRE_CLOSE(*gpu, gp, p, elementwise_tolerance, "sgd parameter");
  RML_REQUIRE_CLOSE(*gpu, gv, v, elementwise_tolerance, "sgd velocity");
  RML_REQUIRE_CLOSE(*gpu, gap, ap, transcendental_tolerance, "adam parameter");
  RML_REQUIRE_CLOSE(*gpu, gm1, m1, elementwise_tolerance, "adam first moment");
  RML_REQUIRE_CLOSE(*gpu, gm2, m2, elementwise_tolerance, "adam second moment");
}

TEST_CASE("a lenet training step on cuda gives the cpu step's loss, gradients and weights") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  paired_sessions pair(*cpu, *gpu, "lenet", 5, {0.05f, 0.9f, 0.0f});
  auto& cpu_model = pair.cpu_model;
  auto& gpu_model = pair.gpu_model;
  auto& cpu_session = *pair.cpu_session;
  auto& gpu_session = *pair.gpu_session;
  for (int step = 0; step < 3; ++step) {
    tensor features = random_tensor(generator, {32, 784}, 0, 1);
    std::vector<std::int32_t> labels(32);
    for (auto& label : labels) label = std::int32_t(random_size(generator, 0, 9));
    std::vector<std::int32_t> cpu_predicted(32), gpu_predicted(32);
    const float cpu_loss = cpu_session.train_step(features, labels, cpu_predicted);
    const float gpu_loss = gpu_session.train_step(features, labels, gpu_predicted);
    CAPTURE(step);
    REQUIRE(gpu_loss == Approx(cpu_loss).epsilon(1e-4));
    REQUIRE(gpu_predicted == cpu_predicted);
    const auto cpu_parameters = cpu_model.parameters(), gpu_parameters = gpu_model.parameters();
    for (std::size_t index = 0; index < cpu_parameters.size(); ++index) {
      CAPTURE(index, cpu_parameters[index]->name);
      REQUIRE(gpu_parameters[index]->value.device() == device_kind::cuda);
      RML_REQUIRE_CLOSE(*gpu, gpu_parameters[index]->gradient, cpu_parameters[index]->gradient, step_gradient_tolerance, "gradient");
      RML_REQUIRE_CLOSE(*gpu, gpu_parameters[index]->value, cpu_parameters[index]->value, conv_tolerance, "weights");
    }
  }
  // Back on the host the weights are what the device trained, and checkable there.
  gpu_model.place_on_host(*gpu);
  REQUIRE(!gpu_model.non_finite_weight());
  const auto cpu_parameters = cpu_model.parameters(), gpu_parameters = gpu_model.parameters();
  for (std::size_t index = 0; index < cpu_parameters.size(); ++index) {
    REQUIRE(gpu_parameters[index]->value.device() == device_kind::cpu);
    RML_REQUIRE_CLOSE(*gpu, gpu_parameters[index]->value, cpu_parameters[index]->value, conv_tolerance, "host weights");
  }
}

TEST_CASE("recorded cuda training steps match the cpu's, guarded, clipped, skipped, re-recorded") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  paired_sessions pair(*cpu, *gpu, "mlp", 11, {0.05f, 0.9f, 0.001f});
  auto& cpu_model = pair.cpu_model;
  auto& gpu_model = pair.gpu_model;
  auto& cpu_update = *pair.cpu_update;
  auto& gpu_update = *pair.gpu_update;
  auto& cpu_session = *pair.cpu_session;
  auto& gpu_session = *pair.gpu_session;
  auto require_same_weights = [&](const char* what) {
    const auto cpu_parameters = cpu_model.parameters(), gpu_parameters = gpu_model.parameters();
    for (std::size_t index = 0; index < cpu_parameters.size(); ++index) {
      CAPTURE(what, index, cpu_parameters[index]->name);
      RML_REQUIRE_CLOSE(*gpu, gpu_parameters[index]->value, cpu_parameters[index]->value, gemm_tolerance * 10, "weights");
    }
  };
  bool clipped = false;
  for (int step = 0; step < 12; ++step) {
    CAPTURE(step);
    // Two batch shapes, each recorded after its first step and replayed from its second.
    const std::int64_t rows = step % 3 == 2 ? 17 : 32;
    tensor features = random_tensor(generator, {rows, 784}, 0, 1);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(rows));
    for (auto& label : labels) label = std::int32_t(random_size(generator, 0, 9));
    std::vector<std::int32_t> cpu_predicted(labels.size()), gpu_predicted(labels.size());
    if (step == 5) {  // a new learning rate: the recorded update is made again
      cpu_update.set_learning_rate(0.02f);
      gpu_update.set_learning_rate(0.02f);
    }
    if (step == 8) {  // weights moved away and back: every recording is made again
      gpu_model.place_on_host(*gpu);
      gpu_model.place_on(*gpu);
    }
    if (step % 2 == 0) {
      const float cpu_loss = cpu_session.train_step(features, labels, cpu_predicted);
      const float gpu_loss = gpu_session.train_step(features, labels, gpu_predicted);
      REQUIRE(gpu_loss == Approx(cpu_loss).epsilon(1e-4));
    } else {
      // Some steps under a bound every gradient exceeds: clipped alike on both.
      const float bound = step % 4 == 1 ? 1e-3f : 0.0f;
      const auto cpu_outcome = cpu_session.guarded_step(features, labels, cpu_predicted, bound);
      const auto gpu_outcome = gpu_session.guarded_step(features, labels, gpu_predicted, bound);
      REQUIRE(gpu_outcome.applied);
      REQUIRE(gpu_outcome.loss == Approx(cpu_outcome.loss).epsilon(1e-4));
      REQUIRE(gpu_outcome.gradient_norm == Approx(cpu_outcome.gradient_norm).epsilon(1e-4));
      REQUIRE(gpu_outcome.clipped == cpu_outcome.clipped);
      clipped = clipped || gpu_outcome.clipped;
    }
    REQUIRE(gpu_predicted == cpu_predicted);
    require_same_weights("after the step");
  }
  REQUIRE(clipped);
  REQUIRE(gpu_session.step_recording_failure().empty());
  REQUIRE(gpu_session.recorded_steps() == 2);
  // A batch with a non-finite feature changes nothing, replayed as planned. (Its loss may be
  // finite: cuBLAS spreads the NaN, but ReLU's max(NaN, 0) is 0 on the device; the first
  // layer's weight gradient is not.)
  tensor poisoned_batch = random_tensor(generator, {32, 784}, 0, 1);
  poisoned_batch.data()[100] = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::int32_t> labels(32, 4), predicted(32);
  const auto outcome = gpu_session.guarded_step(poisoned_batch, labels, predicted, 1.5f);
  REQUIRE_FALSE(outcome.applied);
  REQUIRE_FALSE((std::isfinite(outcome.loss) && std::isfinite(outcome.gradient_norm)));
  require_same_weights("after a skipped step");
}

TEST_CASE("a steady cuda training loop takes no memory from the driver after its first steps") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto generator = seeded_generator();
  auto model = nn::make_architecture("lenet");
  model->initialize(3);
  model->place_on(*gpu);
  nn::adam update(*gpu, model->parameters(), {});
  nn::classifier_session session(*model, update, *gpu);
  tensor features = random_tensor(generator, {64, 784}, 0, 1);
  std::vector<std::int32_t> labels(64, 3);
  for (int step = 0; step < 3; ++step) session.train_step(features, labels);
  const auto before = cuda::counters_of(*gpu);
  float last = 0;
  for (int step = 0; step < 20; ++step) last = session.train_step(features, labels);
  const auto after = cuda::counters_of(*gpu);
  REQUIRE(std::isfinite(last));
  REQUIRE(after.driver_allocations == before.driver_allocations);
  REQUIRE(after.reserved_bytes == before.reserved_bytes);
}

TEST_CASE("a cuda error is an exception naming the call, and the backend works on after it") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  REQUIRE(gpu->description().find("cuda (") == 0);
  // 2⁵⁰ floats: no device has that; the pool's cudaMalloc fails and says so.
  try {
    (void)gpu->allocate({std::int64_t(1) << 25, std::int64_t(1) << 25});
    FAIL("an impossible allocation succeeded");
  } catch (const cuda::device_error& failure) {
    const std::string message = failure.what();
    INFO(message);
    REQUIRE(message.find("cudaMalloc") != std::string::npos);
    REQUIRE(message.find("cuda_backend.cpp:") != std::string::npos);
  }
  tensor x = gpu->allocate({4});
  gpu->fill(x, 1.5f);
  REQUIRE(sum_of_squares(*gpu, x) == Approx(9.0));
}

TEST_CASE("a cuda backend for a device that does not exist is an error value") {
  if (cuda::device_count() == 0) {
    auto made = cuda::make_cuda_backend();
    REQUIRE(!made);
    INFO(made.error().message());
    REQUIRE(made.error().message().find("CUDA") != std::string::npos);
    return;
  }
  auto made = cuda::make_cuda_backend({.device = 99});
  REQUIRE(!made);
  REQUIRE(made.error().message().find("CUDA device 99 does not exist") != std::string::npos);
}

TEST_CASE("recorded cuda forward passes give the plain pass's logits and follow the weights") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  for (const char* name : {"mlp", "lenet"}) {
    CAPTURE(name);
    auto model = nn::make_architecture(name);
    auto reference = nn::make_architecture(name);
    model->initialize(4);
    reference->initialize(4);
    model->place_on(*gpu);
    nn::inference_runner runner(*model, *gpu);
    nn::inference_runner on_cpu(*reference, *cpu);
    for (std::int64_t rows : {1, 7, 64}) {
      CAPTURE(rows);
      // Pinned and pageable host inputs, three calls each: plain, recorded, replayed.
      for (int call = 0; call < 3; ++call) {
        tensor features = call % 2 == 0 ? gpu->allocate_host({rows, 784}) : tensor::empty({rows, 784});
        tensor fresh = random_tensor(generator, {rows, 784}, 0, 1);
        std::copy(fresh.values().begin(), fresh.values().end(), features.values().begin());
        const tensor expected = on_cpu.logits(features).clone();
        RML_REQUIRE_CLOSE(*gpu, runner.logits(features), expected, conv_tolerance, "logits");
      }
    }
    INFO("recording failure: " << runner.recording_failure());
    REQUIRE(runner.recordings() == 3);
    // Weights changed in place (as training does) are read by the next replay.
    tensor features = random_tensor(generator, {7, 784}, 0, 1);
    for (auto [device_weight, host_weight] : {std::pair{model->parameters()[0], reference->parameters()[0]}}) {
      cpu->scale(host_weight->value, 0.5f);
      gpu->scale(device_weight->value, 0.5f);
    }
    RML_REQUIRE_CLOSE(*gpu, runner.logits(features), on_cpu.logits(features).clone(), conv_tolerance, "logits after an update in place");
    // Weights moved away and back make it record again, on the new memory.
    model->place_on_host(*gpu);
    model->place_on(*gpu);
    RML_REQUIRE_CLOSE(*gpu, runner.logits(features), on_cpu.logits(features).clone(), conv_tolerance, "logits after the weights moved");
    RML_REQUIRE_CLOSE(*gpu, runner.logits(features), on_cpu.logits(features).clone(), conv_tolerance, "logits replayed after the move");
  }
}

TEST_CASE("recorded cuda passes from host to host give the cpu's probabilities and classes") {
  auto gpu = gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  auto generator = seeded_generator();
  for (const char* name : {"mlp", "lenet"}) {
    CAPTURE(name);
    auto model = nn::make_architecture(name);
    auto reference = nn::make_architecture(name);
    model->initialize(6);
    reference->initialize(6);
    model->place_on(*gpu);
    nn::inference_runner runner(*model, *gpu);
    nn::inference_runner on_cpu(*reference, *cpu);
    auto require_same = [&](const tensor& features, const char* what) {
      CAPTURE(what);
      const std::int64_t rows = features.dim(0);
      tensor expected = tensor::empty({rows, 10}), got = tensor::empty({rows, 10});
      on_cpu.to_host(features, nn::inference_head::probabilities, expected);
      runner.to_host(features, nn::inference_head::probabilities, got);
      test::require_close(got, test::to_double(expected), transcendental_tolerance * 10, "probabilities");
      tensor expected_classes = tensor::empty({rows}), got_classes = tensor::empty({rows});
      on_cpu.to_host(features, nn::inference_head::classes, expected_classes);
      runner.to_host(features, nn::inference_head::classes, got_classes);
      for (std::int64_t row = 0; row < rows; ++row) {
        // A near tie may fall either way between the two backends' rounding.
        const float* p = expected.data() + row * 10;
        const auto best = std::max_element(p, p + 10) - p;
        if (p[best] - p[std::int64_t(got_classes.data()[row])] > 1e-5f) {
          FAIL("row " << row << ": class " << got_classes.data()[row] << " on cuda, " << expected_classes.data()[row] << " on cpu");
        }
      }
    };
    for (std::int64_t rows : {1, 16}) {
      CAPTURE(rows);
      for (int call = 0; call < 3; ++call) {  // plain and recorded, then replayed twice
        require_same(random_tensor(generator, {rows, 784}, 0, 1), "call");
      }
    }
    INFO("recording failure: " << runner.recording_failure());
    REQUIRE(runner.recording_failure().empty());
    REQUIRE(runner.recordings() == 4);  // two sizes, two heads
    tensor features = random_tensor(generator, {16, 784}, 0, 1);
    cpu->scale(reference->parameters()[0]->value, 0.5f);
    gpu->scale(model->parameters()[0]->value, 0.5f);
    require_same(features, "after an update in place");
    model->place_on_host(*gpu);
    model->place_on(*gpu);
    require_same(features, "after the weights moved");
    require_same(features, "replayed after the move");
  }
}

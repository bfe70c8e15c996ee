// Every backend op: forward against the naive double-precision reference, backward against
// central finite differences of that reference, on random shapes and values drawn from
// Catch's --rng-seed. Tolerances are stated per op (float32 kernels vs double references).
#include "compute/cpu/cpu_backend.hpp"
#include "tests/compute/reference.hpp"

using namespace rml;
using namespace rml::test;

namespace {
constexpr int trials = 6;
constexpr double forward_tolerance = 1e-4;
constexpr double backward_tolerance = 2e-3;

cpu_backend_options single_thread() { return {1}; }
}  // namespace

TEST_CASE("linear forward and backward match the reference on random shapes") {
  auto compute = make_cpu_backend();
  auto generator = seeded_generator();
  for (int trial = 0; trial < trials; ++trial) {
    const std::int64_t m = random_size(generator, 1, 9), k = random_size(generator, 1, 33),
                       n = random_size(generator, 1, 17);
    const bool with_bias = trial % 2 == 0;
    CAPTURE(m, k, n, with_bias);
    const values x = random_values(generator, std::size_t(m * k));
    const values w = random_values(generator, std::size_t(n * k));
    const values b = with_bias ? random_values(generator, std::size_t(n)) : values{};
    const values r = random_values(generator, std::size_t(m * n));

    tensor tx = to_tensor(x, {m, k}), tw = to_tensor(w, {n, k});
    tensor tb = with_bias ? to_tensor(b, {n}) : tensor();
    tensor y = tensor::empty({m, n});
    compute->linear_forward(tx, tw, tb, y);
    require_close(y, linear_ref(x, w, b, m, k, n), forward_tolerance, "linear y");

    tensor dy = to_tensor(r, {m, n}), dx = tensor::empty({m, k}), dw = tensor::empty({n, k});
    tensor db = tensor::empty({n});
    compute->linear_backward(tx, tw, dy, &dx, &dw, with_bias ? &db : nullptr);
    require_close(dx, numeric_gradient([&](const values& v) { return dot(linear_ref(v, w, b, m, k, n), r); }, x),
                  backward_tolerance, "linear dx");
    require_close(dw, numeric_gradient([&](const values& v) { return dot(linear_ref(x, v, b, m, k, n), r); }, w),
                  backward_tolerance, "linear dw");
    if (with_bias) {
      require_close(db, numeric_gradient([&](const values& v) { return dot(linear_ref(x, w, v, m, k, n), r); }, b),
                    backward_tolerance, "linear db");
    }
  }
}

TEST_CASE("conv2d forward and backward match the reference with stride and padding") {
  auto compute = make_cpu_backend();
  auto generator = seeded_generator();
  for (int trial = 0; trial < trials; ++trial) {
    conv_shape s{random_size(generator, 1, 3), random_size(generator, 1, 3), random_size(generator, 5, 9),
                 random_size(generator, 5, 9), random_size(generator, 1, 4), random_size(generator, 1, 3),
                 0, int(random_size(generator, 1, 2)), int(random_size(generator, 0, 2))};
    s.kw = s.kh;
    CAPTURE(s.n, s.c, s.h, s.w, s.o, s.kh, s.stride, s.padding);
    const values x = random_values(generator, std::size_t(s.n * s.c * s.h * s.w));
    const values w = random_values(generator, std::size_t(s.o * s.c * s.kh * s.kw));
    const values b = random_values(generator, std::size_t(s.o));
    const values r = random_values(generator, std::size_t(s.n * s.o * s.oh() * s.ow()));
    const conv2d_params params{s.stride, s.padding};

    tensor tx = to_tensor(x, {s.n, s.c, s.h, s.w}), tw = to_tensor(w, {s.o, s.c, s.kh, s.kw});
    tensor tb = to_tensor(b, {s.o});
    tensor y = tensor::empty({s.n, s.o, s.oh(), s.ow()});
    compute->conv2d_forward(tx, tw, tb, params, y);
    require_close(y, conv2d_ref(x, w, b, s), forward_tolerance, "conv2d y");

    tensor dy = to_tensor(r, y.shape()), dx = tensor::empty(tx.shape()), dw = tensor::empty(tw.shape());
    tensor db = tensor::empty(tb.shape());
    compute->conv2d_backward(tx, tw, dy, params, &dx, &dw, &db);
    require_close(dx, numeric_gradient([&](const values& v) { return dot(conv2d_ref(v, w, b, s), r); }, x),
                  backward_tolerance, "conv2d dx");
    require_close(dw, numeric_gradient([&](const values& v) { return dot(conv2d_ref(x, v, b, s), r); }, w),
                  backward_tolerance, "conv2d dw");
    require_close(db, numeric_gradient([&](const values& v) { return dot(conv2d_ref(x, w, v, s), r); }, b),
                  backward_tolerance, "conv2d db");

    // Weights alone (no bias gradient asked for) give the same weight gradient.
    tensor dw_alone = tensor::empty(tw.shape());
    compute->conv2d_backward(tx, tw, dy, params, nullptr, &dw_alone, nullptr);
    require_close(dw_alone, to_double(dw), 1e-5, "conv2d dw without db");
  }
}

TEST_CASE("max_pool2d forward and backward match the reference") {
  auto compute = make_cpu_backend();
  auto generator = seeded_generator();
  for (int trial = 0; trial < trials; ++trial) {
    const std::int64_t n = random_size(generator, 1, 3), c = random_size(generator, 1, 4),
                       h = random_size(generator, 4, 10), w = random_size(generator, 4, 10);
    const int kernel = int(random_size(generator, 2, 3)), stride = int(random_size(generator, 1, 3));
    CAPTURE(n, c, h, w, kernel, stride);
    // Distinct values spaced 1e-2 apart: finite differences never flip which one is max.
    values x(std::size_t(n * c * h * w));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = double(i) * 1e-2;
    std::shuffle(x.begin(), x.end(), generator);
    const std::int64_t oh = window_output_size(h, kernel, stride, 0), ow = window_output_size(w, kernel, stride, 0);
    const values r = random_values(generator, std::size_t(n * c * oh * ow));

    tensor tx = to_tensor(x, {n, c, h, w}), y = tensor::empty({n, c, oh, ow}), workspace;
    compute->max_pool2d_forward(tx, {kernel, stride}, y, &workspace);
    require_close(y, max_pool_ref(x, n, c, h, w, kernel, stride), forward_tolerance, "max_pool2d y");
    tensor inference_y = tensor::empty(y.shape());
    compute->max_pool2d_forward(tx, {kernel, stride}, inference_y, nullptr);
    require_close(inference_y, to_double(y), 0, "max_pool2d inference y");

    tensor dy = to_tensor(r, y.shape()), dx = tensor::empty(tx.shape());
    compute->max_pool2d_backward(tx, dy, workspace, {kernel, stride}, dx);
    require_close(dx, numeric_gradient([&](const values& v) { return dot(max_pool_ref(v, n, c, h, w, kernel, stride), r); }, x, 1e-4),
                  backward_tolerance, "max_pool2d dx");
  }
}

TEST_CASE("activations forward and backward match the reference") {
  auto compute = make_cpu_backend();
  auto generator = seeded_generator();
  for (activation_kind kind : {activation_kind::relu, activation_kind::tanh, activation_kind::sigmoid}) {
    CAPTURE(to_string(kind));
    const std::int64_t count = random_size(generator, 1, 200);
    values x = random_values(generator, std::size_t(count), -3, 3);
    // Keep relu inputs away from its kink at 0, where the derivative is undefined.
    for (double& v : x) if (std::abs(v) < 0.05) v += 0.1;
    const values r = random_values(generator, std::size_t(count));
    values expected(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) expected[i] = activation_ref(kind, x[i]);

    tensor tx = to_tensor(x, {count}), y = tensor::empty({count});
    compute->activation_forward(kind, tx, y);
    require_close(y, expected, forward_tolerance, "activation y");

    tensor dy = to_tensor(r, {count}), dx = tensor::empty({count});
    compute->activation_backward(kind, y, dy, dx);
    auto scalar = [&](const values& v) {
      double sum = 0;
      for (std::size_t i = 0; i < v.size(); ++i) sum += activation_ref(kind, v[i]) * r[i];
      return sum;
    };
    require_close(dx, numeric_gradient(scalar, x), backward_tolerance, "activation dx");
  }
}

TEST_CASE("softmax cross-entropy is fused, stable and differentiates correctly") {
  auto compute = make_cpu_backend();
  auto generator = seeded_generator();
  for (int trial = 0; trial < trials; ++trial) {
    const std::int64_t m = random_size(generator, 1, 8), n = random_size(generator, 2, 12);
    CAPTURE(m, n);
    const values logits = random_values(generator, std::size_t(m * n), -4, 4);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(m));
    for (auto& label : labels) label = std::int32_t(random_size(generator, 0, n - 1));

    tensor tl = to_tensor(logits, {m, n}), probabilities = tensor::empty({m, n});
    const float loss = cross_entropy_loss(*compute, tl, labels, probabilities);
    REQUIRE(loss == Approx(cross_entropy_ref(logits, labels, m, n)).epsilon(1e-5));
    require_close(probabilities, softmax_ref(logits, m, n), forward_tolerance, "softmax probabilities");

    tensor plain = tensor::empty({m, n});
    compute->softmax_forward(tl, plain);
    require_close(plain, softmax_ref(logits, m, n), forward_tolerance, "softmax");

    const float scale = 0.7f;
    tensor dlogits = tensor::empty({m, n});
    cross_entropy_backward(*compute, probabilities, labels, scale, dlogits);
    values expected = numeric_gradient([&](const values& v) { return scale * cross_entropy_ref(v, labels, m, n); }, logits);
    require_close(dlogits, expected, backward_tolerance, "cross-entropy dlogits");
  }
  SECTION("huge logits give a finite loss") {
    const std::vector<float> logits = {1000.0f, -1000.0f, 999.0f};
    const std::vector<std::int32_t> labels = {2};
    tensor probabilities = tensor::empty({1, 3});
    const float loss = cross_entropy_loss(*compute, tensor::from(logits, {1, 3}), labels, probabilities);
    REQUIRE(std::isfinite(loss));
    // log(e⁰ + e⁻²⁰⁰⁰ + e⁻¹) − (999 − 1000)
    REQUIRE(loss == Approx(1.0 + std::log1p(std::exp(-1.0))).epsilon(1e-5));
  }
}

TEST_CASE("mean squared error matches the reference") {
  auto compute = make_cpu_backend();
  auto generator = seeded_generator();
  const std::int64_t m = random_size(generator, 1, 7), n = random_size(generator, 1, 9);
  const values p = random_values(generator, std::size_t(m * n)), t = random_values(generator, std::size_t(m * n));
  tensor tp = to_tensor(p, {m, n}), tt = to_tensor(t, {m, n});
  REQUIRE(mse_loss(*compute, tp, tt) == Approx(mse_ref(p, t)).epsilon(1e-5));
  tensor dp = tensor::empty({m, n});
  compute->mse_backward(tp, tt, 1.5f, dp);
  require_close(dp, numeric_gradient([&](const values& v) { return 1.5 * mse_ref(v, t); }, p), backward_tolerance, "mse dp");
}

TEST_CASE("add, sgd and adam updates follow PyTorch's formulas") {
  auto compute = make_cpu_backend();
  tensor a = tensor::from(std::vector<float>{1, 2, 3}, {3}), b = tensor::from(std::vector<float>{10, 20, 30}, {3});
  tensor sum = tensor::empty({3});
  compute->add(a, b, sum);
  require_close(sum, {11, 22, 33}, 0, "add");
  // Squared sums add onto the total: a norm over several tensors.
  tensor total = tensor::filled({1}, 0.5f);
  compute->add_sum_of_squares(a, total);
  compute->add_sum_of_squares(b, total);
  REQUIRE(total.data()[0] == Approx(0.5 + 14 + 1400));

  tensor p = tensor::from(std::vector<float>{1.0f, -2.0f}, {2});
  tensor g = tensor::from(std::vector<float>{0.5f, 0.25f}, {2});
  tensor v = tensor::from(std::vector<float>{0.1f, 0.2f}, {2});
  compute->sgd_update(p, g, v, 0.1f, 0.9f, 0.01f);
  // v = 0.9·v + g + 0.01·p; p -= 0.1·v
  const double v0 = 0.9 * 0.1 + 0.5 + 0.01 * 1.0, v1 = 0.9 * 0.2 + 0.25 + 0.01 * -2.0;
  require_close(v, {v0, v1}, 1e-6, "sgd velocity");
  require_close(p, {1.0 - 0.1 * v0, -2.0 - 0.1 * v1}, 1e-6, "sgd parameter");

  tensor q = tensor::from(std::vector<float>{1.0f}, {1}), m1 = tensor::zeros({1}), m2 = tensor::zeros({1});
  tensor gq = tensor::from(std::vector<float>{0.5f}, {1});
  compute->adam_update(q, gq, m1, m2, 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f);
  // First Adam step moves by lr·sign(g) (bias correction makes m̂/√v̂ = 1).
  require_close(q, {1.0 - 0.01}, 1e-6, "adam parameter");
}

TEST_CASE("a steady training loop builds no new oneDNN primitives after its first step") {
  cpu::cpu_backend compute(single_thread());
  tensor x = tensor::filled({4, 3}, 0.5f), w = tensor::filled({2, 3}, 0.1f), b = tensor::zeros({2});
  tensor y = tensor::empty({4, 2}), dx = tensor::empty({4, 3}), dw = tensor::empty({2, 3});
  tensor image = tensor::filled({2, 1, 6, 6}, 0.3f), kernel = tensor::filled({3, 1, 3, 3}, 0.2f), bias = tensor::zeros({3});
  tensor feature = tensor::empty({2, 3, 4, 4}), pooled = tensor::empty({2, 3, 2, 2}), workspace;
  tensor dfeature = tensor::empty(feature.shape()), dimage = tensor::empty(image.shape()), dkernel = tensor::empty(kernel.shape());
  auto step = [&] {
    compute.linear_forward(x, w, b, y);
    compute.linear_backward(x, w, y, &dx, &dw, nullptr);
    compute.conv2d_forward(image, kernel, bias, {1, 0}, feature);
    compute.activation_forward(activation_kind::relu, feature, feature);
    compute.max_pool2d_forward(feature, {2, 2}, pooled, &workspace);
    compute.max_pool2d_backward(feature, pooled, workspace, {2, 2}, dfeature);
    compute.conv2d_backward(image, kernel, dfeature, {1, 0}, &dimage, &dkernel, nullptr);
  };
  step();
  const std::size_t after_first = compute.cached_primitive_count();
  REQUIRE(after_first >= 7);
  for (int repeat = 0; repeat < 5; ++repeat) step();
  REQUIRE(compute.cached_primitive_count() == after_first);
}

TEST_CASE("the cpu backend describes its library and thread budget") {
  auto compute = make_cpu_backend({3});
  REQUIRE(compute->description().find("oneDNN 2.") != std::string::npos);
  REQUIRE(compute->description().find("3 threads") != std::string::npos);
  REQUIRE(make_cpu_backend()->description().find(std::to_string(available_cores()) + " thread") != std::string::npos);
}

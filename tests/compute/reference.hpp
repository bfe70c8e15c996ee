#pragma once
// Naive double-precision reference implementations of every op, for the backend tests:
// forward results are compared with them, and finite differences of them check backward.

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include <catch2/catch.hpp>

#include "compute/backend.hpp"

namespace rml::test {

using values = std::vector<double>;

inline values to_double(const tensor& t) { return values(t.values().begin(), t.values().end()); }

inline tensor to_tensor(const values& v, const tensor_shape& shape) {
  std::vector<float> f(v.begin(), v.end());
  return tensor::from(f, shape);
}

// The ops that leave a one-element result on the device, read back: the tests' shorthand.
inline float cross_entropy_loss(backend& compute, const tensor& logits, std::span<const std::int32_t> labels,
                                tensor& probabilities) {
  tensor loss = compute.allocate({1});
  compute.softmax_cross_entropy_forward(logits, on_device(compute, label_tensor(labels)), probabilities, loss);
  return read_scalar(compute, loss);
}
inline void cross_entropy_backward(backend& compute, const tensor& probabilities,
                                   std::span<const std::int32_t> labels, float scale, tensor& dlogits) {
  compute.softmax_cross_entropy_backward(probabilities, on_device(compute, label_tensor(labels)), scale, dlogits);
}
inline float mse_loss(backend& compute, const tensor& prediction, const tensor& target) {
  tensor loss = compute.allocate({1});
  compute.mse_forward(prediction, target, loss);
  return read_scalar(compute, loss);
}
inline float sum_of_squares(backend& compute, const tensor& x) {
  tensor total = compute.allocate({1});
  compute.fill(total, 0.0f);
  compute.add_sum_of_squares(x, total);
  return read_scalar(compute, total);
}

/// A generator seeded from Catch's --rng-seed, so every randomised test replays.
inline std::mt19937_64 seeded_generator() { return std::mt19937_64(Catch::rngSeed()); }

inline values random_values(std::mt19937_64& generator, std::size_t count, double low = -1, double high = 1) {
  std::uniform_real_distribution<double> uniform(low, high);
  values v(count);
  for (double& x : v) x = uniform(generator);
  return v;
}

inline std::int64_t random_size(std::mt19937_64& generator, std::int64_t low, std::int64_t high) {
  return std::uniform_int_distribution<std::int64_t>(low, high)(generator);
}

// y[M,N] = x[M,K]·w[N,K]ᵀ + b
inline values linear_ref(const values& x, const values& w, const values& b, std::int64_t m,
                         std::int64_t k, std::int64_t n) {
  values y(std::size_t(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double sum = b.empty() ? 0.0 : b[std::size_t(j)];
      for (std::int64_t p = 0; p < k; ++p) sum += x[std::size_t(i * k + p)] * w[std::size_t(j * k + p)];
      y[std::size_t(i * n + j)] = sum;
    }
  return y;
}

struct conv_shape {
  std::int64_t n, c, h, w, o, kh, kw;
  int stride, padding;
  std::int64_t oh() const { return window_output_size(h, kh, stride, padding); }
  std::int64_t ow() const { return window_output_size(w, kw, stride, padding); }
};

inline values conv2d_ref(const values& x, const values& w, const values& b, const conv_shape& s) {
  values y(std::size_t(s.n * s.o * s.oh() * s.ow()));
  for (std::int64_t n = 0; n < s.n; ++n)
    for (std::int64_t o = 0; o < s.o; ++o)
      for (std::int64_t i = 0; i < s.oh(); ++i)
        for (std::int64_t j = 0; j < s.ow(); ++j) {
          double sum = b.empty() ? 0.0 : b[std::size_t(o)];
          for (std::int64_t c = 0; c < s.c; ++c)
            for (std::int64_t p = 0; p < s.kh; ++p)
              for (std::int64_t q = 0; q < s.kw; ++q) {
                const std::int64_t row = i * s.stride + p - s.padding;
                const std::int64_t col = j * s.stride + q - s.padding;
                if (row < 0 || row >= s.h || col < 0 || col >= s.w) continue;
                sum += x[std::size_t(((n * s.c + c) * s.h + row) * s.w + col)] *
                       w[std::size_t(((o * s.c + c) * s.kh + p) * s.kw + q)];
              }
          y[std::size_t(((n * s.o + o) * s.oh() + i) * s.ow() + j)] = sum;
        }
  return y;
}

inline values max_pool_ref(const values& x, std::int64_t n, std::int64_t c, std::int64_t h,
                           std::int64_t w, int kernel, int stride) {
  const std::int64_t oh = window_output_size(h, kernel, stride, 0);
  const std::int64_t ow = window_output_size(w, kernel, stride, 0);
  values y(std::size_t(n * c * oh * ow));
  for (std::int64_t plane = 0; plane < n * c; ++plane)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j) {
        double best = -INFINITY;
        for (int p = 0; p < kernel; ++p)
          for (int q = 0; q < kernel; ++q)
            best = std::max(best, x[std::size_t((plane * h + i * stride + p) * w + j * stride + q)]);
        y[std::size_t((plane * oh + i) * ow + j)] = best;
      }
  return y;
}

inline double activation_ref(activation_kind kind, double x) {
  switch (kind) {
    case activation_kind::relu:
      return x > 0 ? x : 0;
    case activation_kind::tanh:
      return std::tanh(x);
    case activation_kind::sigmoid:
      return 1.0 / (1.0 + std::exp(-x));
  }
  return 0;
}

inline values softmax_ref(const values& logits, std::int64_t m, std::int64_t n) {
  values p(logits.size());
  for (std::int64_t i = 0; i < m; ++i) {
    double maximum = -INFINITY, sum = 0;
    for (std::int64_t j = 0; j < n; ++j) maximum = std::max(maximum, logits[std::size_t(i * n + j)]);
    for (std::int64_t j = 0; j < n; ++j) sum += std::exp(logits[std::size_t(i * n + j)] - maximum);
    for (std::int64_t j = 0; j < n; ++j) p[std::size_t(i * n + j)] = std::exp(logits[std::size_t(i * n + j)] - maximum) / sum;
  }
  return p;
}

inline double cross_entropy_ref(const values& logits, const std::vector<std::int32_t>& labels,
                                std::int64_t m, std::int64_t n) {
  const values p = softmax_ref(logits, m, n);
  double loss = 0;
  for (std::int64_t i = 0; i < m; ++i) loss -= std::log(p[std::size_t(i * n + labels[std::size_t(i)])]);
  return loss / double(m);
}

inline double mse_ref(const values& prediction, const values& target) {
  double sum = 0;
  for (std::size_t i = 0; i < prediction.size(); ++i) sum += (prediction[i] - target[i]) * (prediction[i] - target[i]);
  return sum / double(prediction.size());
}

inline double dot(const values& a, const values& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

/// Central differences of a scalar function of `point`, in double precision.
template <class Function>
values numeric_gradient(Function&& function, values point, double step = 1e-4) {
  values gradient(point.size());
  for (std::size_t i = 0; i < point.size(); ++i) {
    const double saved = point[i];
    point[i] = saved + step;
    const double up = function(point);
    point[i] = saved - step;
    const double down = function(point);
    point[i] = saved;
    gradient[i] = (up - down) / (2 * step);
  }
  return gradient;
}

/// Asserts |actual − expected| ≤ tolerance·max(1, |expected|) element-wise, naming the
/// first element that is off.
inline void require_close(const tensor& actual, const values& expected, double tolerance, const char* what) {
  REQUIRE(std::size_t(actual.numel()) == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double allowed = tolerance * std::max(1.0, std::abs(expected[i]));
    if (std::abs(double(actual.data()[i]) - expected[i]) > allowed) {
      INFO(what << " element " << i << ": got " << actual.data()[i] << ", expected " << expected[i]);
      REQUIRE(std::abs(double(actual.data()[i]) - expected[i]) <= allowed);
    }
  }
}

}  // namespace rml::test

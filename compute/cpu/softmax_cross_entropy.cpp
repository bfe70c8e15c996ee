// Softmax and the fused softmax cross-entropy loss. Softmax alone runs on oneDNN; the loss
// is a hand-written loop because oneDNN has no loss primitives, and fusing keeps it
// numerically stable: log-sum-exp subtracts the row maximum before exponentiating.
#include <cmath>

#include "compute/cpu/cpu_backend.hpp"

namespace rml::cpu {

void cpu_backend::softmax_forward(const tensor& logits, tensor& probabilities) {
  RML_ASSERT(logits.rank() == 2);
  assert_same_shape(probabilities.shape(), logits.shape(), "softmax output");
  const std::int64_t rows = logits.dim(0), columns = logits.dim(1);
  auto& entry = prepared({op_softmax_forward, {rows, columns}}, 10.0 * double(rows * columns), [&] {
    auto data = plain_desc({rows, columns});
    dnnl::softmax_forward::primitive_desc pd(
        dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, data, 1), engine_);
    prepared_primitive result{dnnl::softmax_forward(pd)};
    result.arguments[DNNL_ARG_SRC] = unbound_memory(data, engine_);
    result.arguments[DNNL_ARG_DST] = unbound_memory(data, engine_);
    return result;
  });
  execute(entry, {{DNNL_ARG_SRC, logits.data()}, {DNNL_ARG_DST, probabilities.data()}});
}

namespace {
/// Row `row`'s label, asserted to be a class index in [0, columns).
std::int64_t label_of(const tensor& labels, std::int64_t row, std::int64_t columns) {
  const float label = labels.data()[row];
  RML_ASSERT(label >= 0.0f && label < float(columns) && label == std::floor(label), "label inside the class range");
  return std::int64_t(label);
}
}  // namespace

void cpu_backend::softmax_cross_entropy_forward(const tensor& logits, const tensor& labels,
                                                tensor& probabilities, tensor& loss) {
  RML_ASSERT(logits.rank() == 2);
  assert_same_shape(probabilities.shape(), logits.shape(), "softmax cross-entropy probabilities");
  const std::int64_t rows = logits.dim(0), columns = logits.dim(1);
  assert_same_shape(labels.shape(), {rows}, "softmax cross-entropy labels");
  RML_ASSERT(loss.numel() == 1, "a one-element loss");
  double loss_sum = 0.0;
  for (std::int64_t row = 0; row < rows; ++row) {
    const float* input = logits.data() + row * columns;
    float* output = probabilities.data() + row * columns;
    const std::int64_t label = label_of(labels, row, columns);
    float maximum = input[0];
    for (std::int64_t column = 1; column < columns; ++column) maximum = std::max(maximum, input[column]);
    float sum = 0.0f;
    for (std::int64_t column = 0; column < columns; ++column) {
      output[column] = std::exp(input[column] - maximum);
      sum += output[column];
    }
    const float inverse = 1.0f / sum;
    for (std::int64_t column = 0; column < columns; ++column) output[column] *= inverse;
    // −log p[label] = log Σ exp(x − max) − (x[label] − max): stable for any logits.
    loss_sum += double(std::log(sum)) - double(input[label] - maximum);
  }
  loss.data()[0] = float(loss_sum / double(rows));
}

void cpu_backend::softmax_cross_entropy_backward(const tensor& probabilities, const tensor& labels,
                                                 float scale, tensor& dlogits) {
  RML_ASSERT(probabilities.rank() == 2);
  assert_same_shape(dlogits.shape(), probabilities.shape(), "softmax cross-entropy gradient");
  const std::int64_t rows = probabilities.dim(0), columns = probabilities.dim(1);
  assert_same_shape(labels.shape(), {rows}, "softmax cross-entropy labels");
  const float factor = scale / float(rows);
  const float* input = probabilities.data();
  float* output = dlogits.data();
  for (std::int64_t index = 0; index < rows * columns; ++index) output[index] = input[index] * factor;
  for (std::int64_t row = 0; row < rows; ++row) output[row * columns + label_of(labels, row, columns)] -= factor;
}

}  // namespace rml::cpu

#pragma once
// The CPU backend on oneDNN 2.6. Private to compute/cpu/: everything else sees only
// compute/backend.hpp, which keeps oneDNN's large header out of the rest of the tree.
//
// oneDNN primitives are built the first time an op meets a shape and cached by that shape
// (with their memory objects), so a steady training loop only sets data pointers and
// executes (oneDNN examples/primitives/matmul.cpp). One file per op family implements it.

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>

#include <oneapi/dnnl/dnnl.hpp>

#include "compute/backend.hpp"

namespace rml::cpu {

/// Identifies a cached primitive: which op, and every size and option that shapes it.
struct primitive_key {
  std::uint32_t op = 0;
  std::array<std::int64_t, 11> sizes{};
  bool operator==(const primitive_key&) const = default;
};

struct primitive_key_hash {
  std::size_t operator()(const primitive_key& key) const;
};

/// An argument the primitive wants in another layout than rml's plain row-major one: a
/// buffer in the primitive's layout, owned here, and the reorder between the two.
struct layout_conversion {
  int argument = 0;
  /// rml's tensor, in plain layout; its data pointer is set per call.
  dnnl::memory plain;
  /// Plain → primitive layout for inputs, primitive → plain for outputs.
  dnnl::reorder reorder;
};

/// A primitive ready to run: its memory arguments are created once with no data and get
/// their pointers set per call.
struct prepared_primitive {
  explicit prepared_primitive(dnnl::primitive ready) : primitive(std::move(ready)) {}

  dnnl::primitive primitive;
  std::unordered_map<int, dnnl::memory> arguments;
  /// Arguments reordered before (inputs) and after (outputs) the primitive runs.
  std::vector<layout_conversion> converted_inputs;
  std::vector<layout_conversion> converted_outputs;
  /// Threads this primitive runs on: 1 for work too small to pay for waking another.
  int threads = 1;
};

/// Op identifiers for primitive_key::op.
enum op_id : std::uint32_t {
  op_linear_forward = 1,
  op_linear_forward_small,
  op_linear_backward_data,
  op_linear_backward_weights,
  op_conv_forward,
  op_conv_backward_data,
  op_conv_backward_weights,
  op_pool_forward_training,
  op_pool_forward_inference,
  op_pool_backward,
  op_eltwise_forward,
  op_eltwise_backward,
  op_softmax_forward,
};

class cpu_backend final : public backend {
 public:
  explicit cpu_backend(const cpu_backend_options& options);

  device_kind device() const override { return device_kind::cpu; }
  std::string description() const override;

  tensor allocate(const tensor_shape& shape) override;
  void fill(tensor& destination, float value) override;
  void copy(const tensor& source, tensor& destination) override;

  void linear_forward(const tensor& x, const tensor& w, const tensor& b, tensor& y) override;
  void linear_backward(const tensor& x, const tensor& w, const tensor& dy, tensor* dx,
                       tensor* dw, tensor* db) override;
  void conv2d_forward(const tensor& x, const tensor& w, const tensor& b,
                      const conv2d_params& params, tensor& y) override;
  void conv2d_backward(const tensor& x, const tensor& w, const tensor& dy,
                       const conv2d_params& params, tensor* dx, tensor* dw,
                       tensor* db) override;
  void max_pool2d_forward(const tensor& x, const pool2d_params& params, tensor& y,
                          tensor* workspace) override;
  void max_pool2d_backward(const tensor& x, const tensor& dy, const tensor& workspace,
                           const pool2d_params& params, tensor& dx) override;
  void activation_forward(activation_kind kind, const tensor& x, tensor& y) override;
  void activation_backward(activation_kind kind, const tensor& y, const tensor& dy,
                           tensor& dx) override;
  void softmax_forward(const tensor& logits, tensor& probabilities) override;
  void softmax_cross_entropy_forward(const tensor& logits, const tensor& labels,
                                     tensor& probabilities, tensor& loss) override;
  void softmax_cross_entropy_backward(const tensor& probabilities, const tensor& labels,
                                      float scale, tensor& dlogits) override;
  void mse_forward(const tensor& prediction, const tensor& target, tensor& loss) override;
  void mse_backward(const tensor& prediction, const tensor& target, float scale,
                    tensor& dprediction) override;
  void add(const tensor& a, const tensor& b, tensor& out) override;
  void scale(tensor& x, float factor) override;
  void add_sum_of_squares(const tensor& x, tensor& total) override;
  void argmax_rows(const tensor& scores, tensor& classes) override;
  void sgd_update(tensor& parameter, const tensor& gradient, tensor& velocity,
                  float learning_rate, float momentum, float weight_decay) override;
  void adam_update(tensor& parameter, const tensor& gradient, tensor& first_moment,
                   tensor& second_moment, std::int64_t step, float learning_rate, float beta1,
                   float beta2, float epsilon, float weight_decay) override;

  /// Primitives built so far (tests check that a steady loop builds no more).
  std::size_t cached_primitive_count() const { return cache_.size(); }

 private:
  /// The cached primitive for `key`, built by `build()` the first time; `flops` (the
  /// op's floating-point work) decides how many of the backend's threads it uses.
  template <class Build>
  prepared_primitive& prepared(const primitive_key& key, double flops, Build&& build) {
    auto found = cache_.find(key);
    if (found != cache_.end()) return *found->second;
    auto entry = std::make_unique<prepared_primitive>(build());
    entry->threads = threads_for(flops);
    return *cache_.emplace(key, std::move(entry)).first->second;
  }
  int threads_for(double flops) const;
  int update_threads() const;
  /// Points each argument at its data and runs the primitive on this backend's threads.
  void execute(prepared_primitive& entry,
               std::initializer_list<std::pair<int, const float*>> data);
  /// execute() for a forward primitive of source x, weights w, optional bias b, output y.
  void execute_forward(prepared_primitive& entry, const tensor& x, const tensor& w,
                       const tensor& b, tensor& y);

  dnnl::engine engine_;
  dnnl::stream stream_;
  int threads_;
  int last_primitive_threads_ = 1;
  std::unordered_map<primitive_key, std::unique_ptr<prepared_primitive>, primitive_key_hash>
      cache_;
};

/// A plain (row-major) memory descriptor of f32 with the given dimensions.
dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims);
/// A memory object with no data yet, for a prepared primitive.
dnnl::memory unbound_memory(const dnnl::memory::desc& desc, const dnnl::engine& engine);

enum class argument_direction : std::uint8_t { input, output };
/// Binds `argument` of `entry`: rml passes it in `plain` layout; when the primitive chose
/// another (`wanted`, from a primitive descriptor built with format_tag::any) a buffer in
/// that layout and the reorder between them are prepared too.
void bind_argument(prepared_primitive& entry, int argument, const dnnl::memory::desc& wanted,
                   const dnnl::memory::desc& plain, argument_direction direction,
                   const dnnl::engine& engine);

}  // namespace rml::cpu

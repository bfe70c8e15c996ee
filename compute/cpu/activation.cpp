// Element-wise activations on oneDNN eltwise primitives, in their "use dst for backward"
// forms so the backward pass needs only the forward output.
#include "compute/cpu/cpu_backend.hpp"

namespace rml::cpu {
namespace {
dnnl::algorithm algorithm_of(activation_kind kind) {
  switch (kind) {
    case activation_kind::relu:
      return dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
    case activation_kind::tanh:
      return dnnl::algorithm::eltwise_tanh_use_dst_for_bwd;
    case activation_kind::sigmoid:
      return dnnl::algorithm::eltwise_logistic_use_dst_for_bwd;
  }
  RML_ASSERT(false, "unknown activation kind");
}

dnnl::eltwise_forward::primitive_desc forward_pd(const dnnl::engine& engine,
                                                 activation_kind kind,
                                                 const dnnl::memory::desc& data) {
  return {dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, algorithm_of(kind),
                                      data, 0.0f, 0.0f),
          engine};
}
}  // namespace

void cpu_backend::activation_forward(activation_kind kind, const tensor& x, tensor& y) {
  assert_same_shape(y.shape(), x.shape(), "activation output");
  // Element-wise: a flat view serves every rank and shares one primitive per size.
  const std::int64_t count = x.numel();
  auto& entry = prepared({op_eltwise_forward, {std::int64_t(kind), count}}, 4.0 * double(count), [&] {
    auto data = plain_desc({count});
    prepared_primitive result{dnnl::eltwise_forward(forward_pd(engine_, kind, data))};
    result.arguments[DNNL_ARG_SRC] = unbound_memory(data, engine_);
    result.arguments[DNNL_ARG_DST] = unbound_memory(data, engine_);
    return result;
  });
  execute(entry, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_DST, y.data()}});
}

void cpu_backend::activation_backward(activation_kind kind, const tensor& y, const tensor& dy,
                                      tensor& dx) {
  assert_same_shape(dy.shape(), y.shape(), "activation output gradient");
  assert_same_shape(dx.shape(), y.shape(), "activation input gradient");
  const std::int64_t count = y.numel();
  auto& entry = prepared({op_eltwise_backward, {std::int64_t(kind), count}}, 4.0 * double(count), [&] {
    auto data = plain_desc({count});
    dnnl::eltwise_backward::primitive_desc pd(
        dnnl::eltwise_backward::desc(algorithm_of(kind), data, data, 0.0f, 0.0f), engine_,
        forward_pd(engine_, kind, data));
    prepared_primitive result{dnnl::eltwise_backward(pd)};
    result.arguments[DNNL_ARG_DST] = unbound_memory(data, engine_);
    result.arguments[DNNL_ARG_DIFF_DST] = unbound_memory(data, engine_);
    result.arguments[DNNL_ARG_DIFF_SRC] = unbound_memory(data, engine_);
    return result;
  });
  execute(entry, {{DNNL_ARG_DST, y.data()}, {DNNL_ARG_DIFF_DST, dy.data()},
                  {DNNL_ARG_DIFF_SRC, dx.data()}});
}

}  // namespace rml::cpu

// Max pooling (NCHW, no padding) on oneDNN's pooling primitives; the training forward pass
// keeps oneDNN's workspace (the argmax positions) for the backward pass.
#include "compute/cpu/cpu_backend.hpp"

namespace rml::cpu {
namespace {
using dnnl::memory;

struct pool_geometry {
  std::int64_t batch, channels, height, width, out_h, out_w, kernel, stride;

  pool_geometry(const tensor& x, const pool2d_params& params)
      : batch(x.dim(0)), channels(x.dim(1)), height(x.dim(2)), width(x.dim(3)),
        out_h(window_output_size(height, params.kernel, params.stride, 0)),
        out_w(window_output_size(width, params.kernel, params.stride, 0)),
        kernel(params.kernel), stride(params.stride) {
    RML_ASSERT(x.rank() == 4);
    RML_ASSERT(params.kernel >= 1 && params.stride >= 1);
    RML_ASSERT(out_h >= 1 && out_w >= 1, "pooling window larger than its input");
  }
  double flops() const { return double(batch * channels * out_h * out_w * kernel * kernel); }
  tensor_shape output_shape() const { return {batch, channels, out_h, out_w}; }
  memory::desc src() const { return plain_desc({batch, channels, height, width}); }
  memory::desc dst() const { return plain_desc({batch, channels, out_h, out_w}); }
  primitive_key key(op_id op) const {
    return {op, {batch, channels, height, width, kernel, stride}};
  }
  dnnl::pooling_forward::primitive_desc forward_pd(const dnnl::engine& engine,
                                                   dnnl::prop_kind prop) const {
    return {dnnl::pooling_forward::desc(prop, dnnl::algorithm::pooling_max, src(), dst(),
                                        {stride, stride}, {kernel, kernel}, {0, 0}, {0, 0}),
            engine};
  }
};

std::int64_t workspace_floats(const memory::desc& desc) {
  return std::int64_t((desc.get_size() + sizeof(float) - 1) / sizeof(float));
}
}  // namespace

void cpu_backend::max_pool2d_forward(const tensor& x, const pool2d_params& params, tensor& y,
                                     tensor* workspace) {
  pool_geometry geometry(x, params);
  assert_same_shape(y.shape(), geometry.output_shape(), "max_pool2d output");
  const bool training = workspace != nullptr;
  auto& entry = prepared(
      geometry.key(training ? op_pool_forward_training : op_pool_forward_inference),
      geometry.flops(), [&] {
        auto pd = geometry.forward_pd(engine_, training ? dnnl::prop_kind::forward_training
                                                        : dnnl::prop_kind::forward_inference);
        prepared_primitive result{dnnl::pooling_forward(pd)};
        result.arguments[DNNL_ARG_SRC] = unbound_memory(geometry.src(), engine_);
        result.arguments[DNNL_ARG_DST] = unbound_memory(geometry.dst(), engine_);
        if (training) {
          result.arguments[DNNL_ARG_WORKSPACE] = unbound_memory(pd.workspace_desc(), engine_);
        }
        return result;
      });
  if (!training) {
    execute(entry, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_DST, y.data()}});
    return;
  }
  const std::int64_t floats =
      workspace_floats(entry.arguments.at(DNNL_ARG_WORKSPACE).get_desc());
  if (!workspace->defined() || workspace->numel() != floats) {
    *workspace = tensor::empty({std::max<std::int64_t>(floats, 1)});
  }
  execute(entry, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_DST, y.data()},
                  {DNNL_ARG_WORKSPACE, workspace->data()}});
}

void cpu_backend::max_pool2d_backward(const tensor& x, const tensor& dy, const tensor& workspace,
                                      const pool2d_params& params, tensor& dx) {
  pool_geometry geometry(x, params);
  assert_same_shape(dy.shape(), geometry.output_shape(), "max_pool2d output gradient");
  assert_same_shape(dx.shape(), x.shape(), "max_pool2d input gradient");
  auto& entry = prepared(geometry.key(op_pool_backward), geometry.flops(), [&] {
    auto hint = geometry.forward_pd(engine_, dnnl::prop_kind::forward_training);
    dnnl::pooling_backward::primitive_desc pd(
        dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, geometry.src(),
                                     geometry.dst(), {geometry.stride, geometry.stride},
                                     {geometry.kernel, geometry.kernel}, {0, 0}, {0, 0}),
        engine_, hint);
    prepared_primitive result{dnnl::pooling_backward(pd)};
    result.arguments[DNNL_ARG_DIFF_DST] = unbound_memory(geometry.dst(), engine_);
    result.arguments[DNNL_ARG_DIFF_SRC] = unbound_memory(geometry.src(), engine_);
    result.arguments[DNNL_ARG_WORKSPACE] = unbound_memory(hint.workspace_desc(), engine_);
    return result;
  });
  RML_ASSERT(workspace.numel() >=
                 workspace_floats(entry.arguments.at(DNNL_ARG_WORKSPACE).get_desc()),
             "max_pool2d workspace from the training forward pass");
  execute(entry, {{DNNL_ARG_DIFF_DST, dy.data()}, {DNNL_ARG_DIFF_SRC, dx.data()},
                  {DNNL_ARG_WORKSPACE, workspace.data()}});
}

}  // namespace rml::cpu

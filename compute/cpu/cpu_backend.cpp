#include "compute/cpu/cpu_backend.hpp"

#include <omp.h>
#include <sched.h>

#include <thread>

namespace rml {

const char* to_string(activation_kind kind) {
  switch (kind) {
    case activation_kind::relu:
      return "relu";
    case activation_kind::tanh:
      return "tanh";
    case activation_kind::sigmoid:
      return "sigmoid";
  }
  return "unknown";
}

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

std::unique_ptr<backend> make_cpu_backend(const cpu_backend_options& options) {
  return std::make_unique<cpu::cpu_backend>(options);
}

namespace cpu {

std::size_t primitive_key_hash::operator()(const primitive_key& key) const {
  std::uint64_t hash = 0xcbf29ce484222325ull ^ key.op;  // FNV-1a over the words
  for (std::int64_t size : key.sizes) {
    hash ^= std::uint64_t(size);
    hash *= 0x100000001b3ull;
  }
  return std::size_t(hash);
}

dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims) {
  using tag = dnnl::memory::format_tag;
  static constexpr tag tags[] = {tag::undef, tag::a, tag::ab, tag::abc, tag::abcd};
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, tags[dims.size()]);
}

dnnl::memory unbound_memory(const dnnl::memory::desc& desc, const dnnl::engine& engine) {
  return dnnl::memory(desc, engine, DNNL_MEMORY_NONE);
}

void bind_argument(prepared_primitive& entry, int argument, const dnnl::memory::desc& wanted,
                   const dnnl::memory::desc& plain, argument_direction direction,
                   const dnnl::engine& engine) {
  if (wanted == plain) {
    entry.arguments[argument] = unbound_memory(plain, engine);
    return;
  }
  dnnl::memory converted(wanted, engine);  // owns its buffer for the primitive's lifetime
  dnnl::memory user = unbound_memory(plain, engine);
  entry.arguments[argument] = converted;
  if (direction == argument_direction::input) {
    entry.converted_inputs.push_back({argument, user, dnnl::reorder(user, converted)});
  } else {
    entry.converted_outputs.push_back({argument, user, dnnl::reorder(converted, user)});
  }
}

cpu_backend::cpu_backend(const cpu_backend_options& options)
    : engine_(dnnl::engine::kind::cpu, 0),
      stream_(engine_),
      threads_(options.threads > 0 ? options.threads : available_cores()) {
  RML_ASSERT(options.threads >= 0);
}

std::string cpu_backend::description() const {
  const dnnl_version_t* version = dnnl_version();
  return "cpu (oneDNN " + std::to_string(version->major) + "." +
         std::to_string(version->minor) + "." + std::to_string(version->patch) + ", " +
         std::to_string(threads_) + (threads_ == 1 ? " thread)" : " threads)");
}

int cpu_backend::threads_for(double flops) const {
  // Waking and joining an OpenMP team costs a few microseconds; below about a million
  // floating-point operations (≈ 10 µs on one core) a second thread cannot win that back.
  constexpr double flops_per_extra_thread = 1e6;
  const int useful = 1 + int(flops / flops_per_extra_thread);
  return std::max(1, std::min(threads_, useful));
}

void cpu_backend::execute(prepared_primitive& entry,
                          std::initializer_list<std::pair<int, const float*>> data) {
  auto find_conversion = [](std::vector<layout_conversion>& conversions, int argument) {
    for (layout_conversion& conversion : conversions) {
      if (conversion.argument == argument) return &conversion;
    }
    return static_cast<layout_conversion*>(nullptr);
  };
  for (const auto& [argument, pointer] : data) {
    void* handle = const_cast<float*>(pointer);
    if (auto* conversion = find_conversion(entry.converted_inputs, argument)) {
      conversion->plain.set_data_handle(handle);
    } else if (auto* conversion = find_conversion(entry.converted_outputs, argument)) {
      conversion->plain.set_data_handle(handle);
    } else {
      auto found = entry.arguments.find(argument);
      RML_ASSERT(found != entry.arguments.end(), "argument prepared with the primitive");
      found->second.set_data_handle(handle);
    }
  }
  // OpenMP's thread count is per calling thread; setting it per call keeps this backend's
  // budget whichever thread (actor) runs it. The call costs a few nanoseconds.
  omp_set_num_threads(entry.threads);
  last_primitive_threads_ = entry.threads;
  for (layout_conversion& conversion : entry.converted_inputs) {
    conversion.reorder.execute(stream_, conversion.plain, entry.arguments.at(conversion.argument));
  }
  entry.primitive.execute(stream_, entry.arguments);
  for (layout_conversion& conversion : entry.converted_outputs) {
    conversion.reorder.execute(stream_, entry.arguments.at(conversion.argument), conversion.plain);
  }
  stream_.wait();
}

void cpu_backend::execute_forward(prepared_primitive& entry, const tensor& x, const tensor& w,
                                  const tensor& b, tensor& y) {
  if (b.defined()) {
    execute(entry, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_WEIGHTS, w.data()},
                    {DNNL_ARG_BIAS, b.data()}, {DNNL_ARG_DST, y.data()}});
  } else {
    execute(entry, {{DNNL_ARG_SRC, x.data()}, {DNNL_ARG_WEIGHTS, w.data()},
                    {DNNL_ARG_DST, y.data()}});
  }
}

}  // namespace cpu
}  // namespace rml

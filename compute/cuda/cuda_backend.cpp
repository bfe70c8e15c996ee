// The CUDA backend (cuda_backend.hpp). One stream per backend: every op is queued on it, so
// ops run in the order the caller issues them and a block returned to the pool can be
// handed out again at once (any later use is queued after the last use of its old owner).
#include "compute/cuda/cuda_backend.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "compute/cuda/kernels.hpp"

namespace rml::cuda {
namespace {

[[noreturn]] void fail(const char* statement, const char* file, int line, const std::string& why) {
  throw device_error(std::string(statement) + " failed at " + file + ":" + std::to_string(line) +
                     ": " + why);
}

void check_cuda(cudaError_t status, const char* statement, const char* file, int line) {
  if (status != cudaSuccess) {
    fail(statement, file, line, std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")");
  }
}

void check_cublas(cublasStatus_t status, const char* statement, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) fail(statement, file, line, cublasGetStatusString(status));
}

void check_cudnn(cudnnStatus_t status, const char* statement, const char* file, int line) {
  if (status != CUDNN_STATUS_SUCCESS) fail(statement, file, line, cudnnGetErrorString(status));
}

#define RML_CUDA_CHECK(statement) check_cuda((statement), #statement, __FILE__, __LINE__)
#define RML_CUBLAS_CHECK(statement) check_cublas((statement), #statement, __FILE__, __LINE__)
#define RML_CUDNN_CHECK(statement) check_cudnn((statement), #statement, __FILE__, __LINE__)
// A kernel launch reports a bad configuration only through the last error.
#define RML_LAUNCHED(launch) \
  do {                       \
    launch;                  \
    check_cuda(cudaGetLastError(), #launch, __FILE__, __LINE__); \
  } while (0)

// --- the device memory pool -------------------------------------------------------------

/// A caching allocator: blocks are rounded up to a size class and, when freed, kept on that
/// class's free list for the next request of the class, so a loop that allocates the same
/// shapes every step reaches the driver only in its first step. Shared with every tensor it
/// handed out (their deleters give blocks back), so it outlives the backend if they do.
class device_pool : public std::enable_shared_from_this<device_pool> {
 public:
  explicit device_pool(int device) : device_(device) {}
  device_pool(const device_pool&) = delete;
  device_pool& operator=(const device_pool&) = delete;
  ~device_pool() {
    for (auto& [size, blocks] : free_) {
      for (void* block : blocks) cudaFree(block);
    }
  }

  static std::size_t size_class(std::size_t bytes) {
    // 512-byte steps up to 1 MiB, then 1 MiB steps: at most 1/2 waste for tiny blocks,
    // well under 1% for the large ones that hold most of the memory.
    constexpr std::size_t small = 512, large = std::size_t(1) << 20;
    if (bytes <= large) return std::max(small, (bytes + small - 1) / small * small);
    return (bytes + large - 1) / large * large;
  }

  void* take(std::size_t bytes) {
    const std::size_t size = size_class(bytes);
    {
      std::lock_guard lock(mutex_);
      auto& blocks = free_[size];
      if (!blocks.empty()) {
        void* block = blocks.back();
        blocks.pop_back();
        return block;
      }
    }
    void* block = nullptr;
    cudaError_t status = cudaMalloc(&block, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached();
      status = cudaMalloc(&block, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();  // a failed allocation must not surface at the next launch's check
      fail("cudaMalloc", __FILE__, __LINE__,
           std::string(cudaGetErrorString(status)) + " allocating " + std::to_string(size) +
               " bytes on device " + std::to_string(device_) + " (" +
               std::to_string(reserved_bytes_ >> 20) + " MiB held by this backend's pool)");
    }
    std::lock_guard lock(mutex_);
    ++driver_allocations_;
    reserved_bytes_ += std::int64_t(size);
    return block;
  }

  void give(void* block, std::size_t bytes) {
    std::lock_guard lock(mutex_);
    if (recording_ != nullptr) {
      // Freed while a recording is made (a temporary of the recorded ops): the recording's
      // replays still use it, so it stays the recording's until the recording goes.
      recording_->emplace_back(block, [pool = shared_from_this(), bytes](void* held) { pool->give(held, bytes); });
      return;
    }
    free_[size_class(bytes)].push_back(block);
  }

  /// While a recording is made: where blocks given back go instead (nullptr after).
  void hold_given_for(std::vector<std::shared_ptr<void>>* recording) {
    std::lock_guard lock(mutex_);
    recording_ = recording;
  }

  cuda_backend_counters counters() {
    std::lock_guard lock(mutex_);
    return {driver_allocations_, reserved_bytes_};
  }

 private:
  void release_cached() {
    // Only after a failed cudaMalloc: wait for queued work, then hand every cached block back.
    cudaDeviceSynchronize();
    std::lock_guard lock(mutex_);
    for (auto& [size, blocks] : free_) {
      for (void* block : blocks) {
        cudaFree(block);
        reserved_bytes_ -= std::int64_t(size);
      }
      blocks.clear();
    }
  }

  int device_;
  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::int64_t driver_allocations_ = 0;
  std::int64_t reserved_bytes_ = 0;
  std::vector<std::shared_ptr<void>>* recording_ = nullptr;
};

/// A device buffer from the pool that grows on demand (labels, row losses, cuDNN workspace).
template <class T>
class scratch {
 public:
  T* at_least(device_pool& pool, std::size_t count) {
    if (count > capacity_) {
      if (data_ != nullptr) pool.give(data_, capacity_ * sizeof(T));
      capacity_ = std::max(count, capacity_ * 2);
      data_ = static_cast<T*>(pool.take(capacity_ * sizeof(T)));
    }
    return data_;
  }
  void release(device_pool& pool) {
    if (data_ != nullptr) pool.give(data_, capacity_ * sizeof(T));
    data_ = nullptr;
    capacity_ = 0;
  }

 private:
  T* data_ = nullptr;
  std::size_t capacity_ = 0;
};

kernels::activation kernel_activation(activation_kind kind) {
  switch (kind) {
    case activation_kind::relu:
      return kernels::activation::relu;
    case activation_kind::tanh:
      return kernels::activation::tanh;
    case activation_kind::sigmoid:
      return kernels::activation::sigmoid;
  }
  return kernels::activation::relu;
}

void expect_device(const tensor& t, const char* what) {
  if (t.device() != device_kind::cuda) {
    detail::assertion_failed("tensor on the CUDA device", __FILE__, __LINE__, what);
  }
}

// --- cuDNN descriptors ------------------------------------------------------------------

struct tensor_descriptor {
  cudnnTensorDescriptor_t handle = nullptr;
  tensor_descriptor() { RML_CUDNN_CHECK(cudnnCreateTensorDescriptor(&handle)); }
  ~tensor_descriptor() { cudnnDestroyTensorDescriptor(handle); }
  tensor_descriptor(const tensor_descriptor&) = delete;
  tensor_descriptor& operator=(const tensor_descriptor&) = delete;
  void set(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
    RML_CUDNN_CHECK(cudnnSetTensor4dDescriptor(handle, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(n),
                                               int(c), int(h), int(w)));
  }
};

/// Everything a convolution of one shape needs, made the first time that shape is met:
/// descriptors, the algorithms cuDNN measured fastest, and their workspace sizes.
struct convolution_plan {
  tensor_descriptor input, output, bias;
  cudnnFilterDescriptor_t filter = nullptr;
  cudnnConvolutionDescriptor_t convolution = nullptr;
  cudnnConvolutionFwdAlgo_t forward_algorithm{};
  cudnnConvolutionBwdDataAlgo_t data_algorithm{};
  cudnnConvolutionBwdFilterAlgo_t filter_algorithm{};
  std::size_t forward_workspace = 0, data_workspace = 0, filter_workspace = 0;
  bool backward_chosen = false;
  convolution_plan() {
    RML_CUDNN_CHECK(cudnnCreateFilterDescriptor(&filter));
    RML_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&convolution));
  }
  ~convolution_plan() {
    cudnnDestroyFilterDescriptor(filter);
    cudnnDestroyConvolutionDescriptor(convolution);
  }
  convolution_plan(const convolution_plan&) = delete;
  convolution_plan& operator=(const convolution_plan&) = delete;
};

struct pooling_plan {
  tensor_descriptor input, output;
  cudnnPoolingDescriptor_t pooling = nullptr;
  pooling_plan() { RML_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&pooling)); }
  ~pooling_plan() { cudnnDestroyPoolingDescriptor(pooling); }
  pooling_plan(const pooling_plan&) = delete;
  pooling_plan& operator=(const pooling_plan&) = delete;
};

using plan_key = std::array<std::int64_t, 9>;
struct plan_key_hash {
  std::size_t operator()(const plan_key& key) const {
    std::uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a over the words
    for (std::int64_t word : key) {
      hash ^= std::uint64_t(word);
      hash *= 0x100000001b3ull;
    }
    return std::size_t(hash);
  }
};

/// A CUDA graph instantiated from a captured stream, replayed on that stream. It holds the
/// scratch memory its ops were recorded on (convolution workspaces), which the backend
/// would otherwise regrow and hand to other tensors.
class cuda_graph final : public recorded_work {
 public:
  cuda_graph(cudaGraphExec_t graph, cudaStream_t stream, std::vector<std::shared_ptr<void>> holdings)
      : graph_(graph), stream_(stream), holdings_(std::move(holdings)) {}
  ~cuda_graph() override { cudaGraphExecDestroy(graph_); }
  cuda_graph(const cuda_graph&) = delete;
  cuda_graph& operator=(const cuda_graph&) = delete;
  void replay() override { RML_CUDA_CHECK(cudaGraphLaunch(graph_, stream_)); }

 private:
  cudaGraphExec_t graph_;
  cudaStream_t stream_;
  std::vector<std::shared_ptr<void>> holdings_;
};

// --- the backend ------------------------------------------------------------------------

class cuda_backend final : public backend {
 public:
  explicit cuda_backend(const cuda_backend_options& options)
      : options_(options), pool_(std::make_shared<device_pool>(options.device)) {
    RML_CUDA_CHECK(cudaSetDevice(options.device));
    cudaDeviceProp properties{};
    RML_CUDA_CHECK(cudaGetDeviceProperties(&properties, options.device));
    device_name_ = properties.name;
    RML_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    RML_CUBLAS_CHECK(cublasCreate(&blas_));
    RML_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    RML_CUBLAS_CHECK(cublasSetMathMode(
        blas_, options.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    RML_CUDNN_CHECK(cudnnCreate(&dnn_));
    RML_CUDNN_CHECK(cudnnSetStream(dnn_, stream_));
    RML_CUDA_CHECK(cudaMallocHost(&host_staging_, host_staging_bytes));
    RML_CUDA_CHECK(cudaMallocHost(&upload_ring_, upload_slot_bytes * upload_slots));
    for (auto& done : upload_done_) RML_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    // cuBLAS's workspace from the pool, set once: a captured GEMM then allocates nothing.
    cublas_workspace_ = workspace_blas_.at_least(*pool_, cublas_workspace_bytes);
    RML_CUBLAS_CHECK(cublasSetWorkspace(blas_, cublas_workspace_, cublas_workspace_bytes));
  }

  ~cuda_backend() override {
    enter();
    cudaStreamSynchronize(stream_);
    conv_plans_.clear();
    pool_plans_.clear();
    row_loss_.release(*pool_);
    reduction_.release(*pool_);
    channel_partials_.release(*pool_);
    workspace_.release(*pool_);
    ones_.release(*pool_);
    workspace_blas_.release(*pool_);
    for (auto& done : upload_done_) cudaEventDestroy(done);
    cudaFreeHost(upload_ring_);
    cudaFreeHost(host_staging_);
    cudnnDestroy(dnn_);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }

  device_kind device() const override { return device_kind::cuda; }

  std::string description() const override {
    return "cuda (" + device_name_ + ", device " + std::to_string(options_.device) + ", cuBLAS " +
           std::to_string(cublas_version()) + ", cuDNN " + std::to_string(cudnnGetVersion()) +
           (options_.allow_tf32 ? ", TF32" : ", float32") + (options_.deterministic ? ", deterministic" : "") + ")";
  }

  cuda_backend_counters counters() { return pool_->counters(); }

  // --- memory ---

  tensor allocate(const tensor_shape& shape) override {
    enter();
    const std::size_t bytes = std::size_t(shape.numel()) * sizeof(float);
    auto* block = static_cast<float*>(pool_->take(bytes));
    std::shared_ptr<float> storage(block, [pool = pool_, bytes](float* data) { pool->give(data, bytes); });
    return tensor::adopt(std::move(storage), shape, device_kind::cuda);
  }

  void fill(tensor& destination, float value) override {
    enter();
    expect_device(destination, "fill");
    if (value == 0.0f) {
      RML_CUDA_CHECK(cudaMemsetAsync(destination.data(), 0, bytes_of(destination), stream_));
      return;
    }
    RML_LAUNCHED(kernels::fill(destination.data(), value, destination.numel(), stream_));
  }

  void copy(const tensor& source, tensor& destination) override {
    enter();
    assert_same_shape(destination.shape(), source.shape(), "cuda copy");
    if (source.data() == destination.data()) return;
    if (source.device() == device_kind::cpu && destination.device() == device_kind::cuda &&
        bytes_of(source) <= upload_slot_bytes && !is_pinned(source.data())) {
      upload_small(source.data(), destination.data(), bytes_of(source));
      return;
    }
    if (source.device() == device_kind::cuda && destination.device() == device_kind::cpu) {
      if (capture_holdings_ != nullptr) {
        // Recorded: the caller waits after the replay (backend::record).
        RML_ASSERT(is_pinned(destination.data()), "a recorded copy to host memory from allocate_host()");
        RML_CUDA_CHECK(cudaMemcpyAsync(destination.data(), source.data(), bytes_of(source), cudaMemcpyDeviceToHost, stream_));
        return;
      }
      read_back(source.data(), destination.data(), bytes_of(source));
      return;
    }
    // cudaMemcpyDefault: unified addressing tells host from device. A pageable host source
    // is staged by the driver before the call returns, so the caller may reuse it at once.
    RML_CUDA_CHECK(cudaMemcpyAsync(destination.data(), source.data(), bytes_of(source),
                                   cudaMemcpyDefault, stream_));
  }

  void synchronize() override {
    enter();
    RML_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  tensor allocate_host(const tensor_shape& shape) override {
    enter();
    void* block = nullptr;
    RML_CUDA_CHECK(cudaMallocHost(&block, std::size_t(shape.numel()) * sizeof(float)));
    std::shared_ptr<float> storage(static_cast<float*>(block), [](float* data) { cudaFreeHost(data); });
    return tensor::adopt(std::move(storage), shape, device_kind::cpu);
  }

  std::unique_ptr<recorded_work> record(const std::function<void()>& work) override {
    enter();
    // Relaxed: the pool may take a fresh block from the driver while the ops are recorded.
    RML_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
    std::vector<std::shared_ptr<void>> holdings;
    capture_holdings_ = &holdings;
    pool_->hold_given_for(&holdings);
    try {
      work();
      capture_holdings_ = nullptr;
      pool_->hold_given_for(nullptr);
    } catch (...) {
      capture_holdings_ = nullptr;
      pool_->hold_given_for(nullptr);
      cudaGraph_t abandoned = nullptr;
      cudaStreamEndCapture(stream_, &abandoned);
      if (abandoned != nullptr) cudaGraphDestroy(abandoned);
      cudaGetLastError();
      throw;
    }
    cudaGraph_t graph = nullptr;
    RML_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t instance = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&instance, graph, 0);
    cudaGraphDestroy(graph);
    RML_CUDA_CHECK(made);
    return std::make_unique<cuda_graph>(instance, stream_, std::move(holdings));
  }

  // --- linear ---
  // rml's row-major X[M,K] is cuBLAS's column-major Xᵀ (K×M, leading dimension K), so each
  // product below is the transpose of the one the comment states.

  void linear_forward(const tensor& x, const tensor& w, const tensor& b, tensor& y) override {
    enter();
    const std::int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
    RML_ASSERT(x.rank() == 2 && w.rank() == 2 && w.dim(1) == k);
    assert_same_shape(y.shape(), {m, n}, "linear output");
    expect_device(x, "linear x");
    expect_device(w, "linear w");
    const float one = 1.0f, zero = 0.0f;
    if (m == 1) {
      // One row (a batch-1 prediction): a matrix-vector product, one kernel where cuBLAS
      // runs its GEMM as two, with the bias as its starting value (y = W·x + b).
      if (b.defined()) {
        RML_ASSERT(b.numel() == n);
        RML_CUDA_CHECK(cudaMemcpyAsync(y.data(), b.data(), std::size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
      }
      RML_CUBLAS_CHECK(cublasSgemv(blas_, CUBLAS_OP_T, int(k), int(n), &one, w.data(), int(k), x.data(), 1,
                                   b.defined() ? &one : &zero, y.data(), 1));
      return;
    }
    // Yᵀ (N×M) = W (N×K, stored as Wᵀ K×N: transposed) · Xᵀ (K×M).
    RML_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(k), &one,
                                 w.data(), int(k), x.data(), int(k), &zero, y.data(), int(n)));
    if (b.defined()) {
      RML_ASSERT(b.numel() == n);
      RML_LAUNCHED(kernels::add_bias_rows(y.data(), b.data(), m, n, stream_));
    }
  }

  void linear_backward(const tensor& x, const tensor& w, const tensor& dy, tensor* dx, tensor* dw,
                       tensor* db) override {
    enter();
    const std::int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
    assert_same_shape(dy.shape(), {m, n}, "linear dy");
    expect_device(dy, "linear dy");
    const float one = 1.0f, zero = 0.0f;
    if (dx != nullptr) {
      assert_same_shape(dx->shape(), x.shape(), "linear dx");
      // dXᵀ (K×M) = Wᵀ (K×N) · dYᵀ (N×M).
      RML_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, int(k), int(m), int(n), &one,
                                   w.data(), int(k), dy.data(), int(n), &zero, dx->data(), int(k)));
    }
    if (dw != nullptr) {
      assert_same_shape(dw->shape(), w.shape(), "linear dw");
      // dWᵀ (K×N) = Xᵀ (K×M) · dY (M×N, stored as dYᵀ: transposed).
      RML_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, int(k), int(n), int(m), &one,
                                   x.data(), int(k), dy.data(), int(n), &zero, dw->data(), int(k)));
    }
    if (db != nullptr) {
      RML_ASSERT(db->numel() == n);
      // db = dYᵀ (N×M) · 1 (M): a GEMV against a cached vector of ones.
      const float* ones = ones_of(m);
      RML_CUBLAS_CHECK(cublasSgemv(blas_, CUBLAS_OP_N, int(n), int(m), &one, dy.data(), int(n), ones,
                                   1, &zero, db->data(), 1));
    }
  }

  // --- convolution ---

  void conv2d_forward(const tensor& x, const tensor& w, const tensor& b, const conv2d_params& params,
                      tensor& y) override {
    enter();
    RML_ASSERT(x.rank() == 4 && w.rank() == 4 && w.dim(1) == x.dim(1));
    convolution_plan& plan = convolution(x, w, params);
    int n, c, h, width;
    RML_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan.convolution, plan.input.handle,
                                                          plan.filter, &n, &c, &h, &width));
    assert_same_shape(y.shape(), {n, c, h, width}, "conv2d output");
    const float one = 1.0f, zero = 0.0f;
    void* workspace = workspace_of(plan.forward_workspace);
    RML_CUDNN_CHECK(cudnnConvolutionForward(dnn_, &one, plan.input.handle, x.data(), plan.filter,
                                            w.data(), plan.convolution, plan.forward_algorithm,
                                            workspace, plan.forward_workspace, &zero,
                                            plan.output.handle, y.data()));
    if (b.defined()) {
      RML_ASSERT(b.numel() == w.dim(0));
      RML_CUDNN_CHECK(cudnnAddTensor(dnn_, &one, plan.bias.handle, b.data(), &one,
                                     plan.output.handle, y.data()));
    }
  }

  void conv2d_backward(const tensor& x, const tensor& w, const tensor& dy, const conv2d_params& params,
                       tensor* dx, tensor* dw, tensor* db) override {
    enter();
    convolution_plan& plan = convolution(x, w, params);
    choose_backward(plan);
    expect_device(dy, "conv2d dy");
    const float one = 1.0f, zero = 0.0f;
    if (dx != nullptr) {
      assert_same_shape(dx->shape(), x.shape(), "conv2d dx");
      void* workspace = workspace_of(plan.data_workspace);
      RML_CUDNN_CHECK(cudnnConvolutionBackwardData(dnn_, &one, plan.filter, w.data(), plan.output.handle,
                                                   dy.data(), plan.convolution, plan.data_algorithm,
                                                   workspace, plan.data_workspace, &zero,
                                                   plan.input.handle, dx->data()));
    }
    if (dw != nullptr) {
      assert_same_shape(dw->shape(), w.shape(), "conv2d dw");
      void* workspace = workspace_of(plan.filter_workspace);
      RML_CUDNN_CHECK(cudnnConvolutionBackwardFilter(dnn_, &one, plan.input.handle, x.data(),
                                                     plan.output.handle, dy.data(), plan.convolution,
                                                     plan.filter_algorithm, workspace,
                                                     plan.filter_workspace, &zero, plan.filter,
                                                     dw->data()));
    }
    if (db != nullptr) {
      RML_ASSERT(db->numel() == w.dim(0));
      // Own kernel: cuDNN's cudnnConvolutionBackwardBias took ten times PyTorch's reduction.
      const std::int64_t images = dy.dim(0), channels = dy.dim(1);
      double* partial = scratch_of(channel_partials_, std::size_t(channels * kernels::channel_sum_slices(images)));
      RML_LAUNCHED(kernels::channel_sums(dy.data(), images, channels, dy.dim(2) * dy.dim(3), partial, db->data(), stream_));
    }
  }

  // --- pooling ---

  void max_pool2d_forward(const tensor& x, const pool2d_params& params, tensor& y,
                          tensor* workspace) override {
    enter();
    RML_ASSERT(x.rank() == 4);
    pooling_plan& plan = pooling(x, params);
    assert_same_shape(y.shape(),
                      {x.dim(0), x.dim(1), window_output_size(x.dim(2), params.kernel, params.stride, 0),
                       window_output_size(x.dim(3), params.kernel, params.stride, 0)},
                      "max_pool2d output");
    const float one = 1.0f, zero = 0.0f;
    RML_CUDNN_CHECK(cudnnPoolingForward(dnn_, plan.pooling, &one, plan.input.handle, x.data(), &zero,
                                        plan.output.handle, y.data()));
    // cuDNN's backward pass finds each window's maximum again from x and y: the workspace
    // is y itself (shared, not copied; the tape keeps values unchanged).
    if (workspace != nullptr) *workspace = y;
  }

  void max_pool2d_backward(const tensor& x, const tensor& dy, const tensor& workspace,
                           const pool2d_params& params, tensor& dx) override {
    enter();
    pooling_plan& plan = pooling(x, params);
    assert_same_shape(workspace.shape(), dy.shape(), "max_pool2d workspace (the forward output)");
    assert_same_shape(dx.shape(), x.shape(), "max_pool2d dx");
    const float one = 1.0f, zero = 0.0f;
    RML_CUDNN_CHECK(cudnnPoolingBackward(dnn_, plan.pooling, &one, plan.output.handle, workspace.data(),
                                         plan.output.handle, dy.data(), plan.input.handle, x.data(),
                                         &zero, plan.input.handle, dx.data()));
  }

  // --- element-wise and row-wise ---

  void activation_forward(activation_kind kind, const tensor& x, tensor& y) override {
    enter();
    assert_same_shape(y.shape(), x.shape(), "activation output");
    expect_device(x, "activation x");
    expect_device(y, "activation y");
    RML_LAUNCHED(kernels::activation_forward(kernel_activation(kind), x.data(), y.data(), x.numel(), stream_));
  }

  void activation_backward(activation_kind kind, const tensor& y, const tensor& dy, tensor& dx) override {
    enter();
    assert_same_shape(dy.shape(), y.shape(), "activation dy");
    assert_same_shape(dx.shape(), y.shape(), "activation dx");
    expect_device(dy, "activation dy");
    expect_device(dx, "activation dx");
    RML_LAUNCHED(kernels::activation_backward(kernel_activation(kind), y.data(), dy.data(), dx.data(),
                                              y.numel(), stream_));
  }

  void softmax_forward(const tensor& logits, tensor& probabilities) override {
    enter();
    RML_ASSERT(logits.rank() == 2);
    assert_same_shape(probabilities.shape(), logits.shape(), "softmax output");
    expect_device(logits, "softmax logits");
    expect_device(probabilities, "softmax output");
    RML_LAUNCHED(kernels::softmax_rows(logits.data(), probabilities.data(), logits.dim(0), logits.dim(1), stream_));
  }

  void softmax_cross_entropy_forward(const tensor& logits, const tensor& labels, tensor& probabilities,
                                     tensor& loss) override {
    enter();
    RML_ASSERT(logits.rank() == 2);
    assert_same_shape(probabilities.shape(), logits.shape(), "softmax cross-entropy probabilities");
    expect_device(logits, "softmax cross-entropy logits");
    expect_device(probabilities, "softmax cross-entropy probabilities");
    const std::int64_t rows = logits.dim(0), columns = logits.dim(1);
    assert_same_shape(labels.shape(), {rows}, "softmax cross-entropy labels");
    expect_device(labels, "softmax cross-entropy labels");
    expect_loss(loss);
    float* row_loss = scratch_of(row_loss_, std::size_t(rows));
    RML_LAUNCHED(kernels::softmax_cross_entropy_rows(logits.data(), labels.data(), probabilities.data(),
                                                     row_loss, rows, columns, stream_));
    reduce_into(loss, 1.0f / float(rows), false,
                [&](double* sum) { kernels::sum(row_loss, rows, sum, stream_); });
  }

  void softmax_cross_entropy_backward(const tensor& probabilities, const tensor& labels,
                                      float scale, tensor& dlogits) override {
    enter();
    RML_ASSERT(probabilities.rank() == 2);
    assert_same_shape(dlogits.shape(), probabilities.shape(), "softmax cross-entropy gradient");
    expect_device(dlogits, "softmax cross-entropy gradient");
    const std::int64_t rows = probabilities.dim(0);
    assert_same_shape(labels.shape(), {rows}, "softmax cross-entropy labels");
    expect_device(labels, "softmax cross-entropy labels");
    RML_LAUNCHED(kernels::softmax_cross_entropy_backward(probabilities.data(), labels.data(),
                                                         scale / float(rows), dlogits.data(), rows,
                                                         probabilities.dim(1), stream_));
  }

  void mse_forward(const tensor& prediction, const tensor& target, tensor& loss) override {
    enter();
    assert_same_shape(target.shape(), prediction.shape(), "mse target vs prediction");
    expect_device(prediction, "mse prediction");
    expect_device(target, "mse target");
    expect_loss(loss);
    reduce_into(loss, 1.0f / float(prediction.numel()), false, [&](double* result) {
      kernels::sum_of_squared_differences(prediction.data(), target.data(), prediction.numel(), result, stream_);
    });
  }

  void mse_backward(const tensor& prediction, const tensor& target, float scale,
                    tensor& dprediction) override {
    enter();
    assert_same_shape(target.shape(), prediction.shape(), "mse target vs prediction");
    expect_device(prediction, "mse prediction");
    expect_device(target, "mse target");
    assert_same_shape(dprediction.shape(), prediction.shape(), "mse gradient");
    RML_LAUNCHED(kernels::scaled_difference(prediction.data(), target.data(),
                                            2.0f * scale / float(prediction.numel()), dprediction.data(),
                                            prediction.numel(), stream_));
  }

  void add(const tensor& a, const tensor& b, tensor& out) override {
    enter();
    assert_same_shape(b.shape(), a.shape(), "add operands");
    assert_same_shape(out.shape(), a.shape(), "add output");
    expect_device(a, "add a");
    expect_device(b, "add b");
    expect_device(out, "add output");
    RML_LAUNCHED(kernels::add(a.data(), b.data(), out.data(), a.numel(), stream_));
  }

  void scale(tensor& x, float factor) override {
    enter();
    expect_device(x, "scale x");
    RML_LAUNCHED(kernels::scale(x.data(), factor, x.numel(), stream_));
  }

  void add_sum_of_squares(const tensor& x, tensor& total) override {
    enter();
    expect_device(x, "add_sum_of_squares x");
    expect_loss(total);
    reduce_into(total, 1.0f, true,
                [&](double* result) { kernels::sum_of_squares(x.data(), x.numel(), result, stream_); });
  }

  void argmax_rows(const tensor& scores, tensor& classes) override {
    enter();
    RML_ASSERT(scores.rank() == 2);
    assert_same_shape(classes.shape(), {scores.dim(0)}, "argmax classes");
    expect_device(scores, "argmax_rows scores");
    expect_device(classes, "argmax_rows classes");
    RML_LAUNCHED(kernels::argmax_rows(scores.data(), classes.data(), scores.dim(0), scores.dim(1), stream_));
  }

  void sgd_update(tensor& parameter, const tensor& gradient, tensor& velocity, float learning_rate,
                  float momentum, float weight_decay) override {
    enter();
    assert_same_shape(gradient.shape(), parameter.shape(), "sgd gradient");
    assert_same_shape(velocity.shape(), parameter.shape(), "sgd velocity");
    expect_device(parameter, "sgd parameter");
    expect_device(gradient, "sgd gradient");
    expect_device(velocity, "sgd velocity");
    RML_LAUNCHED(kernels::sgd_update(parameter.data(), gradient.data(), velocity.data(), parameter.numel(),
                                     learning_rate, momentum, weight_decay, stream_));
  }

  void adam_update(tensor& parameter, const tensor& gradient, tensor& first_moment, tensor& second_moment,
                   std::int64_t step, float learning_rate, float beta1, float beta2, float epsilon,
                   float weight_decay) override {
    enter();
    assert_same_shape(gradient.shape(), parameter.shape(), "adam gradient");
    assert_same_shape(first_moment.shape(), parameter.shape(), "adam first moment");
    assert_same_shape(second_moment.shape(), parameter.shape(), "adam second moment");
    expect_device(parameter, "adam parameter");
    expect_device(gradient, "adam gradient");
    expect_device(first_moment, "adam first moment");
    expect_device(second_moment, "adam second moment");
    const auto [step_size, inverse_sqrt_correction2] = fold_adam_corrections(step, learning_rate, beta1, beta2);
    RML_LAUNCHED(kernels::adam_update(parameter.data(), gradient.data(), first_moment.data(),
                                      second_moment.data(), parameter.numel(), step_size,
                                      inverse_sqrt_correction2, beta1, beta2, epsilon, weight_decay,
                                      stream_));
  }

 private:
  /// Makes this backend's GPU the calling thread's current device: an actor may run on any
  /// of CAF's threads, and CUDA keeps the current device per thread.
  void enter() const {
    thread_local int current = -1;
    if (current == options_.device) return;
    RML_CUDA_CHECK(cudaSetDevice(options_.device));
    current = options_.device;
  }

  static constexpr std::size_t host_staging_bytes = 1 << 16;
  static constexpr std::size_t upload_slot_bytes = 1 << 16;
  static constexpr int upload_slots = 8;
  static constexpr std::size_t cublas_workspace_bytes = std::size_t(32) << 20;

  static bool is_pinned(const void* host) {
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, host) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return attributes.type == cudaMemoryTypeHost;
  }

  /// A small upload from pageable memory: through a ring of page-locked slots, so that it
  /// is a DMA queued behind the work before it rather than a copy the driver stages (each
  /// slot is reused only after its last copy finished).
  void upload_small(const void* host, void* device, std::size_t bytes) {
    const int slot = next_upload_slot_;
    next_upload_slot_ = (slot + 1) % upload_slots;
    RML_CUDA_CHECK(cudaEventSynchronize(upload_done_[slot]));
    void* staged = static_cast<std::byte*>(upload_ring_) + std::size_t(slot) * upload_slot_bytes;
    std::memcpy(staged, host, bytes);
    RML_CUDA_CHECK(cudaMemcpyAsync(device, staged, bytes, cudaMemcpyHostToDevice, stream_));
    RML_CUDA_CHECK(cudaEventRecord(upload_done_[slot], stream_));
  }

  static std::size_t bytes_of(const tensor& t) { return std::size_t(t.numel()) * sizeof(float); }

  static int cublas_version() {
    int version = 0;
    cublasGetProperty(MAJOR_VERSION, &version);
    int minor = 0;
    cublasGetProperty(MINOR_VERSION, &minor);
    return version * 100 + minor;
  }

  /// Copies device memory to host memory, through pinned staging when it fits (a pageable
  /// destination would make the driver stage it anyway), and waits for it.
  void read_back(const void* device, void* host, std::size_t bytes) {
    if (bytes <= host_staging_bytes) {
      RML_CUDA_CHECK(cudaMemcpyAsync(host_staging_, device, bytes, cudaMemcpyDeviceToHost, stream_));
      RML_CUDA_CHECK(cudaStreamSynchronize(stream_));
      std::memcpy(host, host_staging_, bytes);
      return;
    }
    RML_CUDA_CHECK(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_));
    RML_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  static void expect_loss(const tensor& value) {
    expect_device(value, "one-element result");
    RML_ASSERT(value.numel() == 1, "a one-element result");
  }

  /// Runs a reduction into a double on the device and stores it, times `factor`, into the
  /// one-element `out` (added on when `accumulate`), all queued: nothing waits.
  template <class Reduce>
  void reduce_into(tensor& out, float factor, bool accumulate, Reduce&& reduce) {
    double* device_sum = scratch_of(reduction_, 1);
    RML_LAUNCHED(reduce(device_sum));
    RML_LAUNCHED(kernels::store_sum(device_sum, factor, out.data(), accumulate, stream_));
  }

  /// A shared scratch buffer of at least `count` elements; while a recording is made, a
  /// buffer of the recording's own instead (the shared one may be regrown and its memory
  /// handed to other tensors while the recording still uses it).
  template <class T>
  T* scratch_of(scratch<T>& shared, std::size_t count) {
    if (capture_holdings_ != nullptr) return static_cast<T*>(held_by_recording(count * sizeof(T)));
    return shared.at_least(*pool_, count);
  }

  const float* ones_of(std::int64_t count) {
    if (capture_holdings_ != nullptr) {
      // A recording keeps its own vector of ones, as it keeps its workspace.
      auto* ones = static_cast<float*>(held_by_recording(std::size_t(count) * sizeof(float)));
      RML_LAUNCHED(kernels::fill(ones, 1.0f, count, stream_));
      return ones;
    }
    if (std::int64_t(ones_count_) < count) {
      ones_count_ = std::size_t(count);
      float* ones = ones_.at_least(*pool_, ones_count_);
      RML_LAUNCHED(kernels::fill(ones, 1.0f, count, stream_));
    }
    return ones_.at_least(*pool_, ones_count_);
  }

  void* workspace_of(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    return scratch_of(workspace_, bytes);
  }

  /// Pool memory that the recording under way owns (and gives back when it goes).
  void* held_by_recording(std::size_t bytes) {
    void* block = pool_->take(bytes);
    capture_holdings_->emplace_back(block, [pool = pool_, bytes](void* held) { pool->give(held, bytes); });
    return block;
  }

  convolution_plan& convolution(const tensor& x, const tensor& w, const conv2d_params& params) {
    expect_device(x, "conv2d x");
    expect_device(w, "conv2d w");
    const plan_key key{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(2), w.dim(3), params.stride, params.padding};
    auto found = conv_plans_.find(key);
    if (found != conv_plans_.end()) return *found->second;
    auto plan = std::make_unique<convolution_plan>();
    plan->input.set(x.dim(0), x.dim(1), x.dim(2), x.dim(3));
    RML_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->filter, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(w.dim(0)),
                                               int(w.dim(1)), int(w.dim(2)), int(w.dim(3))));
    RML_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan->convolution, params.padding, params.padding,
                                                    params.stride, params.stride, 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    RML_CUDNN_CHECK(cudnnSetConvolutionMathType(
        plan->convolution, options_.allow_tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    int n, c, h, width;
    RML_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan->convolution, plan->input.handle,
                                                          plan->filter, &n, &c, &h, &width));
    plan->output.set(n, c, h, width);
    plan->bias.set(1, w.dim(0), 1, 1);
    // cuDNN times its algorithms on this shape once (as PyTorch's cudnn.benchmark does); the
    // fastest that succeeded is kept for every later call.
    cudnnConvolutionFwdAlgoPerf_t results[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int returned = 0;
    RML_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(dnn_, plan->input.handle, plan->filter,
                                                         plan->convolution, plan->output.handle,
                                                         CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, results));
    const auto& best = fastest_accepted(results, returned, "cudnnFindConvolutionForwardAlgorithm");
    plan->forward_algorithm = best.algo;
    plan->forward_workspace = best.memory;
    return *conv_plans_.emplace(key, std::move(plan)).first->second;
  }

  /// Whether an algorithm's math may be used: not the tensor cores' TF32 unless allowed.
  bool accepts(cudnnMathType_t math) const {
    return options_.allow_tf32 ||
           (math != CUDNN_TENSOR_OP_MATH && math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
  }

  /// The first (cuDNN's Find sorts them fastest first) algorithm that ran and whose math
  /// and determinism are allowed.
  template <class Performance>
  const Performance& fastest_accepted(const Performance* results, int returned, const char* search) const {
    const auto* best = std::find_if(results, results + returned, [&](const Performance& r) {
      return r.status == CUDNN_STATUS_SUCCESS && accepts(r.mathType) &&
             (!options_.deterministic || r.determinism == CUDNN_DETERMINISTIC);
    });
    if (best == results + returned) fail(search, __FILE__, __LINE__, "no algorithm for this shape and math");
    return *best;
  }

  void choose_backward(convolution_plan& plan) {
    if (plan.backward_chosen) return;
    cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int returned = 0;
    RML_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(dnn_, plan.filter, plan.output.handle,
                                                              plan.convolution, plan.input.handle,
                                                              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                              &returned, data));
    const auto& best_data = fastest_accepted(data, returned, "cudnnFindConvolutionBackwardDataAlgorithm");
    plan.data_algorithm = best_data.algo;
    plan.data_workspace = best_data.memory;
    cudnnConvolutionBwdFilterAlgoPerf_t filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    RML_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(dnn_, plan.input.handle, plan.output.handle,
                                                                plan.convolution, plan.filter,
                                                                CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                                &returned, filter));
    const auto& best_filter = fastest_accepted(filter, returned, "cudnnFindConvolutionBackwardFilterAlgorithm");
    plan.filter_algorithm = best_filter.algo;
    plan.filter_workspace = best_filter.memory;
    plan.backward_chosen = true;
  }

  pooling_plan& pooling(const tensor& x, const pool2d_params& params) {
    expect_device(x, "max_pool2d x");
    const plan_key key{x.dim(0), x.dim(1), x.dim(2), x.dim(3), params.kernel, params.stride, 0, 0, 0};
    auto found = pool_plans_.find(key);
    if (found != pool_plans_.end()) return *found->second;
    auto plan = std::make_unique<pooling_plan>();
    plan->input.set(x.dim(0), x.dim(1), x.dim(2), x.dim(3));
    RML_CUDNN_CHECK(cudnnSetPooling2dDescriptor(plan->pooling, CUDNN_POOLING_MAX, CUDNN_PROPAGATE_NAN,
                                                params.kernel, params.kernel, 0, 0, params.stride,
                                                params.stride));
    plan->output.set(x.dim(0), x.dim(1), window_output_size(x.dim(2), params.kernel, params.stride, 0),
                     window_output_size(x.dim(3), params.kernel, params.stride, 0));
    return *pool_plans_.emplace(key, std::move(plan)).first->second;
  }

  cuda_backend_options options_;
  std::shared_ptr<device_pool> pool_;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cudnnHandle_t dnn_ = nullptr;
  void* host_staging_ = nullptr;
  void* upload_ring_ = nullptr;
  std::array<cudaEvent_t, upload_slots> upload_done_{};
  int next_upload_slot_ = 0;
  scratch<std::byte> workspace_blas_;
  /// While record() runs: where scratch memory the recording must own goes.
  std::vector<std::shared_ptr<void>>* capture_holdings_ = nullptr;
  void* cublas_workspace_ = nullptr;
  scratch<float> row_loss_;
  scratch<double> reduction_;
  scratch<double> channel_partials_;
  scratch<std::byte> workspace_;
  scratch<float> ones_;
  std::size_t ones_count_ = 0;
  std::unordered_map<plan_key, std::unique_ptr<convolution_plan>, plan_key_hash> conv_plans_;
  std::unordered_map<plan_key, std::unique_ptr<pooling_plan>, plan_key_hash> pool_plans_;
};

}  // namespace

result<std::unique_ptr<backend>> make_cuda_backend(const cuda_backend_options& options) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return error(errc::not_ready, std::string("no usable CUDA device: ") + cudaGetErrorString(status));
  }
  if (options.device < 0 || options.device >= count) {
    return error(errc::invalid_argument, "CUDA device " + std::to_string(options.device) + " does not exist (" +
                                             std::to_string(count) + " present)");
  }
  try {
    return std::unique_ptr<backend>(std::make_unique<cuda_backend>(options));
  } catch (const device_error& failure) {
    return error(errc::not_ready, std::string("CUDA backend on device ") + std::to_string(options.device) +
                                      ": " + failure.what());
  }
}

cuda_backend_counters counters_of(const backend& compute) {
  auto* cuda = dynamic_cast<const cuda_backend*>(&compute);
  RML_ASSERT(cuda != nullptr, "counters_of a CUDA backend");
  return const_cast<cuda_backend*>(cuda)->counters();
}

}  // namespace rml::cuda

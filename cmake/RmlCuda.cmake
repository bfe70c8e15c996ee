# RML_CUDA=AUTO|ON|OFF decides whether the CUDA backend (compute/cuda) is built.
# AUTO builds it when nvcc and cuDNN are found (CUDA lives under /usr/local/cuda on the
# machines rml is developed on) and a CPU-only rml otherwise; ON fails when they are missing.
set(RML_HAVE_CUDA OFF)
string(TOUPPER "${RML_CUDA}" _rml_cuda)
if(NOT _rml_cuda MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "RML_CUDA must be AUTO, ON or OFF, got '${RML_CUDA}'")
endif()

if(NOT _rml_cuda STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS /usr/local/cuda/include)
  find_library(CUDNN_LIBRARY cudnn HINTS /usr/local/cuda/lib64)
  if(CMAKE_CUDA_COMPILER AND CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(RML_HAVE_CUDA ON)
  elseif(_rml_cuda STREQUAL "ON")
    message(FATAL_ERROR "RML_CUDA=ON but nvcc (${CMAKE_CUDA_COMPILER}) or cuDNN "
                        "(${CUDNN_INCLUDE_DIR}, ${CUDNN_LIBRARY}) was not found")
  endif()
endif()

# What the fuzz-only build (RML_FUZZ=ON, clang) needs: the protocol decoders' headers and
# libraries, a subset of RmlDependencies.cmake (no oneDNN or OpenMP: nothing fuzzed uses them).
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "RML_FUZZ needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
endif()
find_package(Threads REQUIRED)
find_package(CAF 0.17 REQUIRED)
find_path(XXHASH_INCLUDE_DIR NAMES xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY NAMES xxhash REQUIRED)
add_library(xxhash::xxhash UNKNOWN IMPORTED)
set_target_properties(xxhash::xxhash PROPERTIES IMPORTED_LOCATION "${XXHASH_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${XXHASH_INCLUDE_DIR}")
find_path(RAPIDJSON_INCLUDE_DIR NAMES rapidjson/document.h REQUIRED)
find_path(BEAST_INCLUDE_DIR NAMES boost/beast.hpp REQUIRED)

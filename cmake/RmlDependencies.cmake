# Every third-party dependency comes from Debian 12's packages, all listed in
# scripts/debian-packages, which scripts/setup.sh installs. A missing one fails here with the
# package that provides it; rml_missing_package refuses to name a package the list lacks, so
# the errors and the list cannot drift apart.
file(STRINGS "${PROJECT_SOURCE_DIR}/scripts/debian-packages" _rml_package_lines REGEX "^[a-z0-9]")
set(RML_DEBIAN_PACKAGES "")
foreach(_line IN LISTS _rml_package_lines)
  string(REGEX MATCH "^[^ \t#]+" _package "${_line}")
  list(APPEND RML_DEBIAN_PACKAGES "${_package}")
endforeach()

# rml_missing_package(<what> <package>...): stops configuring, naming what is missing and the
# packages that provide it.
function(rml_missing_package what)
  foreach(package IN LISTS ARGN)
    if(NOT package IN_LIST RML_DEBIAN_PACKAGES)
      message(FATAL_ERROR "cmake/RmlDependencies.cmake names '${package}', which scripts/debian-packages does not list")
    endif()
  endforeach()
  string(REPLACE ";" " and " packages "${ARGN}")
  message(FATAL_ERROR "${what} not found: install Debian's ${packages} (scripts/setup.sh does)")
endfunction()

find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)

# oneDNN's own CMake config requires OpenCL (Debian builds it with the OpenCL GPU runtime),
# which libdnnl-dev only recommends: look for it first so its absence is named here.
find_package(OpenCL QUIET)
if(NOT OpenCL_FOUND)
  rml_missing_package("OpenCL (required by oneDNN's CMake config)" ocl-icd-opencl-dev)
endif()

find_package(dnnl 2.6 CONFIG QUIET)
if(NOT dnnl_FOUND)
  rml_missing_package("oneDNN 2.6" libdnnl-dev)
endif()

find_package(ZLIB QUIET)
if(NOT ZLIB_FOUND)
  rml_missing_package("zlib" zlib1g-dev)
endif()

find_path(XXHASH_INCLUDE_DIR NAMES xxhash.h)
find_library(XXHASH_LIBRARY NAMES xxhash)
if(NOT XXHASH_INCLUDE_DIR OR NOT XXHASH_LIBRARY)
  rml_missing_package("xxHash" libxxhash-dev)
endif()
add_library(xxhash::xxhash UNKNOWN IMPORTED)
set_target_properties(xxhash::xxhash PROPERTIES
  IMPORTED_LOCATION "${XXHASH_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${XXHASH_INCLUDE_DIR}")

find_package(CLI11 CONFIG QUIET)
if(NOT CLI11_FOUND)
  rml_missing_package("CLI11" libcli11-dev)
endif()

# CAF is what the actor layers above compute/ are built on; finding it here checks the
# installation even before those layers exist.
find_package(CAF 0.17 QUIET)
if(NOT CAF_FOUND)
  rml_missing_package("CAF 0.17" libcaf-dev)
endif()

find_path(ZMQ_INCLUDE_DIR NAMES zmq.hpp)
find_library(ZMQ_LIBRARY NAMES zmq)
if(NOT ZMQ_INCLUDE_DIR OR NOT ZMQ_LIBRARY)
  rml_missing_package("ZeroMQ" libzmq3-dev cppzmq-dev)
endif()
add_library(ZeroMQ::zmq UNKNOWN IMPORTED)
set_target_properties(ZeroMQ::zmq PROPERTIES
  IMPORTED_LOCATION "${ZMQ_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${ZMQ_INCLUDE_DIR}")

find_package(yaml-cpp 0.7 CONFIG QUIET)
if(NOT yaml-cpp_FOUND)
  rml_missing_package("yaml-cpp" libyaml-cpp-dev)
endif()

find_package(RocksDB CONFIG QUIET)
if(NOT RocksDB_FOUND)
  rml_missing_package("RocksDB" librocksdb-dev)
endif()

# Boost.Beast (header-only) for the HTTP endpoint; RapidJSON for its JSON.
find_path(BEAST_INCLUDE_DIR NAMES boost/beast.hpp)
if(NOT BEAST_INCLUDE_DIR)
  rml_missing_package("Boost.Beast" libboost-dev)
endif()
# OpenSSL: TLS on the HTTP endpoint (Boost.Beast's ssl_stream) and constant-time key checks.
find_package(OpenSSL 3 QUIET)
if(NOT OpenSSL_FOUND)
  rml_missing_package("OpenSSL 3" libssl-dev)
endif()
find_path(RAPIDJSON_INCLUDE_DIR NAMES rapidjson/document.h)
if(NOT RAPIDJSON_INCLUDE_DIR)
  rml_missing_package("RapidJSON" rapidjson-dev)
endif()

# jemalloc for the rml binary: serving allocates a few KB per request on several threads,
# where glibc's malloc spends ~15% of the time (consolidation, chunk unlinking) and sustained
# half the throughput under overload (bench/RESULTS.md, serving).
find_library(JEMALLOC_LIBRARY NAMES jemalloc)
if(NOT JEMALLOC_LIBRARY)
  rml_missing_package("jemalloc" libjemalloc-dev)
endif()

if(RML_BUILD_TESTS)
  find_package(Catch2 2.13 QUIET)
  if(NOT Catch2_FOUND)
    rml_missing_package("Catch2 2.13" catch2)
  endif()
endif()

# Every third-party dependency comes from Debian 12's packages; scripts/setup.sh installs
# them. A missing one fails here with the package that provides it.
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)

find_package(dnnl 2.6 CONFIG QUIET)
if(NOT dnnl_FOUND)
  message(FATAL_ERROR "oneDNN 2.6 not found: install Debian's libdnnl-dev (scripts/setup.sh does)")
endif()

find_package(ZLIB QUIET)
if(NOT ZLIB_FOUND)
  message(FATAL_ERROR "zlib not found: install Debian's zlib1g-dev (scripts/setup.sh does)")
endif()

find_path(XXHASH_INCLUDE_DIR NAMES xxhash.h)
find_library(XXHASH_LIBRARY NAMES xxhash)
if(NOT XXHASH_INCLUDE_DIR OR NOT XXHASH_LIBRARY)
  message(FATAL_ERROR "xxHash not found: install Debian's libxxhash-dev (scripts/setup.sh does)")
endif()
add_library(xxhash::xxhash UNKNOWN IMPORTED)
set_target_properties(xxhash::xxhash PROPERTIES
  IMPORTED_LOCATION "${XXHASH_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${XXHASH_INCLUDE_DIR}")

find_package(CLI11 CONFIG QUIET)
if(NOT CLI11_FOUND)
  message(FATAL_ERROR "CLI11 not found: install Debian's libcli11-dev (scripts/setup.sh does)")
endif()

# CAF is what the actor layers above compute/ are built on; finding it here checks the
# installation even before those layers exist.
find_package(CAF 0.17 QUIET)
if(NOT CAF_FOUND)
  message(FATAL_ERROR "CAF 0.17 not found: install Debian's libcaf-dev (scripts/setup.sh does)")
endif()

find_path(ZMQ_INCLUDE_DIR NAMES zmq.hpp)
find_library(ZMQ_LIBRARY NAMES zmq)
if(NOT ZMQ_INCLUDE_DIR OR NOT ZMQ_LIBRARY)
  message(FATAL_ERROR "ZeroMQ not found: install Debian's libzmq3-dev and cppzmq-dev (scripts/setup.sh does)")
endif()
add_library(ZeroMQ::zmq UNKNOWN IMPORTED)
set_target_properties(ZeroMQ::zmq PROPERTIES
  IMPORTED_LOCATION "${ZMQ_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${ZMQ_INCLUDE_DIR}")

find_package(RocksDB CONFIG QUIET)
if(NOT RocksDB_FOUND)
  message(FATAL_ERROR "RocksDB not found: install Debian's librocksdb-dev (scripts/setup.sh does)")
endif()

# Boost.Beast (header-only) for the HTTP endpoint; RapidJSON for its JSON.
find_path(BEAST_INCLUDE_DIR NAMES boost/beast.hpp)
if(NOT BEAST_INCLUDE_DIR)
  message(FATAL_ERROR "Boost.Beast not found: install Debian's libboost-dev (scripts/setup.sh does)")
endif()
find_path(RAPIDJSON_INCLUDE_DIR NAMES rapidjson/document.h)
if(NOT RAPIDJSON_INCLUDE_DIR)
  message(FATAL_ERROR "RapidJSON not found: install Debian's rapidjson-dev (scripts/setup.sh does)")
endif()

# jemalloc for the rml binary: serving allocates a few KB per request on several threads,
# where glibc's malloc spends ~15% of the time (consolidation, chunk unlinking) and sustained
# half the throughput under overload (bench/RESULTS.md, serving).
find_library(JEMALLOC_LIBRARY NAMES jemalloc)
if(NOT JEMALLOC_LIBRARY)
  message(FATAL_ERROR "jemalloc not found: install Debian's libjemalloc-dev (scripts/setup.sh does)")
endif()

if(RML_BUILD_TESTS)
  find_package(Catch2 2.13 QUIET)
  if(NOT Catch2_FOUND)
    message(FATAL_ERROR "Catch2 2.13 not found: install Debian's catch2 (scripts/setup.sh does)")
  endif()
endif()

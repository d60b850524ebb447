# Finds every third-party library. Debian (bookworm) packages only, installed by
# scripts/install-deps.sh. Each workaround below says what it works around.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(LIBUV  REQUIRED IMPORTED_TARGET GLOBAL libuv)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET GLOBAL libsodium)
# msgpack-cxx 4.x exports its config as "msgpack" with target msgpackc-cxx.
find_package(msgpack 4 CONFIG REQUIRED)
# OpenDHT's exported target names these targets but its config never creates them.
pkg_check_modules(Jsoncpp REQUIRED IMPORTED_TARGET GLOBAL jsoncpp)
pkg_check_modules(OPENSSL REQUIRED IMPORTED_TARGET GLOBAL openssl)
find_package(opendht 2.4 CONFIG REQUIRED)
find_package(doctest CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(nlohmann_json 3 CONFIG REQUIRED)
find_package(tomlplusplus 3 CONFIG REQUIRED)
# Debian builds spdlog as a shared library against the system fmt (SPDLOG_FMT_EXTERNAL).
find_package(spdlog CONFIG REQUIRED)
# The dashboard's HTTP server (transfer/web_server.cpp): Debian ships cpp-httplib
# as a shared library plus header (libcpp-httplib-dev).
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib)
# Port mapping on home routers (portmap/): miniupnpc has a pkg-config file,
# libnatpmp (libnatpmp-dev) only a header and a library.
pkg_check_modules(MINIUPNPC REQUIRED IMPORTED_TARGET GLOBAL miniupnpc)
find_path(NATPMP_INCLUDE_DIR natpmp.h REQUIRED)
find_library(NATPMP_LIBRARY natpmp REQUIRED)
add_library(ps_natpmp INTERFACE)
target_include_directories(ps_natpmp INTERFACE ${NATPMP_INCLUDE_DIR})
target_link_libraries(ps_natpmp INTERFACE ${NATPMP_LIBRARY})

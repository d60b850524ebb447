# libpatchswarm: the node for embedding, behind a C API
# (include/patchswarm/patchswarm.h, embed/; docs/embedding.md).
#
# A shared library: the module libraries (ps_node and below) are linked into
# it whole-program, and only the C functions are exported (-fvisibility=hidden
# for its own code, --exclude-libs for the static modules), so a program links
# -lpatchswarm alone. Its C++ dependencies (OpenDHT, libuv, libsodium, spdlog,
# ...) stay private: they are the .so's own NEEDED entries, not the program's.
#
# Installed: the library, the header, a pkg-config file (patchswarm.pc, with
# paths relative to its own folder, so any --prefix or DESTDIR works) and a
# CMake package (find_package(patchswarm) -> patchswarm::patchswarm).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

add_library(libpatchswarm SHARED embed/patchswarm.cpp)
set_target_properties(libpatchswarm PROPERTIES
  OUTPUT_NAME patchswarm
  EXPORT_NAME patchswarm
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON
  PUBLIC_HEADER include/patchswarm/patchswarm.h)
target_include_directories(libpatchswarm PUBLIC
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(libpatchswarm PRIVATE ps_node ps_build_flags)
target_link_options(libpatchswarm PRIVATE -Wl,--exclude-libs,ALL -Wl,--no-undefined)
target_compile_definitions(libpatchswarm PRIVATE PS_PROJECT_VERSION="${PROJECT_VERSION}")

install(TARGETS libpatchswarm EXPORT patchswarmTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/patchswarm)
install(EXPORT patchswarmTargets NAMESPACE patchswarm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/patchswarm)
configure_package_config_file(cmake/patchswarmConfig.cmake.in ${CMAKE_BINARY_DIR}/patchswarmConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/patchswarm)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/patchswarmConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/patchswarmConfig.cmake ${CMAKE_BINARY_DIR}/patchswarmConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/patchswarm)

# pkg-config: the prefix from the .pc file's own place (${pcfiledir}).
file(RELATIVE_PATH PS_PC_PREFIX /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
configure_file(cmake/patchswarm.pc.in ${CMAKE_BINARY_DIR}/patchswarm.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/patchswarm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

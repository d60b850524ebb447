# Installation layout and the Debian package (CPack, DEB generator);
# scripts/package.sh builds it, docs/packaging.md describes it.
#
# The package installs under /usr (CPACK_PACKAGING_INSTALL_PREFIX), the config
# under /etc. Man pages and the bash completion are generated from the built
# binary's --help by scripts/cli_reference.py, so they follow the code.
include(GNUInstallDirs)

install(TARGETS patchswarm RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES packaging/patchswarm.service DESTINATION lib/systemd/system)
install(FILES packaging/patchswarm.sysusers DESTINATION lib/sysusers.d RENAME patchswarm.conf)
install(FILES packaging/patchswarm.tmpfiles DESTINATION lib/tmpfiles.d RENAME patchswarm.conf)
install(FILES packaging/patchswarm.toml DESTINATION /etc/patchswarm)
install(FILES README.md docs/cli.md docs/daemon.md docs/manifest.md docs/packaging.md docs/embedding.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

find_package(Python3 COMPONENTS Interpreter REQUIRED)
find_program(HELP2MAN help2man)
set(PS_MAN_DIR ${CMAKE_BINARY_DIR}/man)
set(PS_COMPLETION ${CMAKE_BINARY_DIR}/completion/patchswarm)
add_custom_command(OUTPUT ${PS_COMPLETION}
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/scripts/cli_reference.py $<TARGET_FILE:patchswarm>
          completion ${PS_COMPLETION}
  DEPENDS patchswarm ${CMAKE_SOURCE_DIR}/scripts/cli_reference.py
  COMMENT "bash completion from patchswarm --help")
set(cli_docs ${PS_COMPLETION})
if(HELP2MAN)
  add_custom_command(OUTPUT ${PS_MAN_DIR}/patchswarm.1.gz
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${PS_MAN_DIR}
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/scripts/cli_reference.py $<TARGET_FILE:patchswarm>
            man ${PS_MAN_DIR}
    DEPENDS patchswarm ${CMAKE_SOURCE_DIR}/scripts/cli_reference.py
    COMMENT "man pages from patchswarm --help (help2man)")
  list(APPEND cli_docs ${PS_MAN_DIR}/patchswarm.1.gz)
  install(DIRECTORY ${PS_MAN_DIR}/ DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(WARNING "help2man not found (scripts/install-deps.sh installs it): no man pages")
endif()
add_custom_target(ps_cli_docs ALL DEPENDS ${cli_docs})
install(FILES ${PS_COMPLETION} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME patchswarm)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "patchswarm maintainers <patchswarm@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "operator-signed software patches spread through a peer-to-peer swarm")
set(CPACK_PACKAGE_DESCRIPTION
    "patchswarm gets an operator-signed patch from one origin to many devices: caches run as\n"
    "super-nodes, devices run a background node, holders are found through an OpenDHT overlay\n"
    "keyed by network domain, and every segment is checked against the signed manifest.\n"
    "The package holds the patchswarm command, the node's systemd unit, its user and a\n"
    "default configuration.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # patchswarm_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Runtime libraries (libuv1, libsodium23, libopendht2, libspdlog, ...) from the
# binary, through dpkg-shlibdeps; systemd for sysusers/tmpfiles is optional.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")
# libpatchswarm.so (cmake/library.cmake): a shlibs file and the ldconfig trigger.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm ${CMAKE_SOURCE_DIR}/packaging/debian/postrm
    ${CMAKE_SOURCE_DIR}/packaging/debian/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_BINARY_DIR}/package)
include(CPack)

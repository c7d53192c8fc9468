# Installation (cmake --install) and the Debian package CPack builds from it (cpack -G DEB in
# the build directory): the binary, the browser client, the docs and licence, the systemd unit
# and an example configuration. The unit and the example name the package's paths (/usr/bin,
# /usr/share/roomcast/web, /etc/roomcast): an install under another prefix adapts them.
include(GNUInstallDirs)

install(TARGETS roomcast RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY web/ DESTINATION ${CMAKE_INSTALL_DATADIR}/roomcast/web)
install(FILES README.md LICENSE docs/architecture.md docs/client.md docs/operations.md
              docs/protocol.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES deploy/systemd/roomcast.service DESTINATION lib/systemd/system)
# /etc/roomcast under the prefix /usr (the package), PREFIX/etc/roomcast under any other. Judged
# when installing, since CPack installs with its own prefix (/usr), not the configured one.
install(CODE "
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(roomcast_confdir /etc/roomcast)
  else()
    set(roomcast_confdir \"\${CMAKE_INSTALL_PREFIX}/etc/roomcast\")
  endif()
  file(INSTALL DESTINATION \"\${roomcast_confdir}\" TYPE FILE
       FILES \"${PROJECT_SOURCE_DIR}/deploy/roomcast.toml\")
")

# Debian's machine-readable copyright file (the licence, which a .deb carries there): the MIT
# text of LICENSE, each line indented, blank lines as " .".
file(STRINGS ${PROJECT_SOURCE_DIR}/LICENSE license_lines)
set(copyright "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: roomcast
Source: https://github.com/roomcast/roomcast

Files: *
Copyright: 2026 roomcast developers
License: MIT
")
foreach(line IN LISTS license_lines)
  if(line STREQUAL "")
    string(APPEND copyright " .\n")
  else()
    string(APPEND copyright " ${line}\n")
  endif()
endforeach()
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/debian/copyright "${copyright}")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/debian/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The configuration is the administrator's: an upgrade keeps their edits.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/debian/conffiles "/etc/roomcast/roomcast.toml\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME roomcast)
set(CPACK_PACKAGE_VENDOR "roomcast developers")
set(CPACK_PACKAGE_CONTACT "roomcast developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "real-time chat server: WebSocket rooms and a browser client")
set(CPACK_PACKAGE_DESCRIPTION
    "roomcast serves chat rooms over WebSocket (a JSON protocol), durable history in SQLite or a
cluster through Redis, JWT authentication, Prometheus metrics and a browser client, from one
binary. Run it with systemd: systemctl enable --now roomcast (settings in
/etc/roomcast/roomcast.toml).")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# Absolute destinations (/etc/roomcast) land in the package's tree through DESTDIR.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: the shared libraries the binary links, as dpkg-shlibdeps finds them.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_BINARY_DIR}/debian/conffiles)
include(CPack)

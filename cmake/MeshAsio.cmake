# Provides asio::asio (standalone Asio, header-only), in this order: an existing
# target, an installed copy (e.g. Debian's libasio-dev), or a download.
if(TARGET asio::asio)
  return()
endif()

find_path(MESH_ASIO_INCLUDE_DIR asio.hpp)
if(NOT MESH_ASIO_INCLUDE_DIR)
  if(NOT MESH_FETCH_ASIO)
    message(FATAL_ERROR "standalone Asio not found: install it (Debian: libasio-dev) "
                        "or set MESH_ASIO_INCLUDE_DIR, or enable MESH_FETCH_ASIO")
  endif()
  include(FetchContent)
  FetchContent_Declare(meshhpp_asio
    URL https://github.com/chriskohlhoff/asio/archive/refs/tags/asio-1-28-0.tar.gz
    URL_HASH SHA256=226438b0798099ad2a202563a83571ce06dd13b570d8fded4840dbc1f97fa328)
  FetchContent_GetProperties(meshhpp_asio)
  if(NOT meshhpp_asio_POPULATED)
    FetchContent_Populate(meshhpp_asio)
  endif()
  set(MESH_ASIO_INCLUDE_DIR "${meshhpp_asio_SOURCE_DIR}/asio/include" CACHE PATH "" FORCE)
endif()

# Imported, so an exported mesh::mesh refers to it by name and every consumer's
# package config makes its own.
add_library(asio::asio INTERFACE IMPORTED GLOBAL)
set_target_properties(asio::asio PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${MESH_ASIO_INCLUDE_DIR}"
  INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${MESH_ASIO_INCLUDE_DIR}"
  INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;ASIO_NO_DEPRECATED"
  INTERFACE_LINK_LIBRARIES Threads::Threads)

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
  FetchContent_Declare(mesh_asio
    URL https://github.com/chriskohlhoff/asio/archive/refs/tags/asio-1-28-0.tar.gz)
  FetchContent_GetProperties(mesh_asio)
  if(NOT mesh_asio_POPULATED)
    FetchContent_Populate(mesh_asio)
  endif()
  set(MESH_ASIO_INCLUDE_DIR "${mesh_asio_SOURCE_DIR}/asio/include" CACHE PATH "" FORCE)
endif()

add_library(mesh_asio INTERFACE)
target_include_directories(mesh_asio SYSTEM INTERFACE "${MESH_ASIO_INCLUDE_DIR}")
target_compile_definitions(mesh_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
target_link_libraries(mesh_asio INTERFACE Threads::Threads)
add_library(asio::asio ALIAS mesh_asio)

# Whether Asio's C++20 coroutine support (asio::use_awaitable) builds with this
# compiler, for the coroutine example and tests. Asio 1.22 recognises GCC's
# coroutines but not Clang's with libstdc++, which work when it is told they exist:
# MESH_COROUTINE_DEFINITIONS then holds what to tell it. MESH_COROUTINE_OPTIONS holds
# compile options those targets need: Clang before 15 cannot emit UBSan's function
# check in coroutines ("Cannot represent a difference across sections"), so it is off
# there (harmless without sanitizers).
include(CheckCXXSourceCompiles)
include(CMakePushCheckState)

set(mesh_coroutine_probe [[
#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>
#if !defined(ASIO_HAS_CO_AWAIT)
#error "no co_await"
#endif
asio::awaitable<int> answer() { co_return 42; }
int main() { return 0; }
]])

cmake_push_check_state(RESET)
set(CMAKE_REQUIRED_INCLUDES "${MESH_ASIO_INCLUDE_DIR}")
set(CMAKE_REQUIRED_FLAGS "${CMAKE_CXX20_STANDARD_COMPILE_OPTION}")
set(CMAKE_REQUIRED_QUIET ON)
check_cxx_source_compiles("${mesh_coroutine_probe}" MESH_COROUTINES_AS_IS)
set(MESH_COROUTINE_DEFINITIONS "")
if(MESH_COROUTINES_AS_IS)
  set(MESH_HAS_COROUTINES ON)
else()
  set(CMAKE_REQUIRED_DEFINITIONS -DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1)
  check_cxx_source_compiles("${mesh_coroutine_probe}" MESH_COROUTINES_WHEN_TOLD)
  if(MESH_COROUTINES_WHEN_TOLD)
    set(MESH_HAS_COROUTINES ON)
    set(MESH_COROUTINE_DEFINITIONS ASIO_HAS_CO_AWAIT=1 ASIO_HAS_STD_COROUTINE=1)
  else()
    set(MESH_HAS_COROUTINES OFF)
    message(STATUS "mesh: this compiler builds no Asio coroutines, so the coroutine example and tests are left out")
  endif()
endif()
cmake_pop_check_state()

set(MESH_COROUTINE_OPTIONS "")
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 15)
  set(MESH_COROUTINE_OPTIONS -fno-sanitize=function)
endif()

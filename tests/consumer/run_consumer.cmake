# Builds tests/consumer/main.cpp as a consumer would and runs it. MODE is
#   add_subdirectory: the project in add_subdirectory/, with the source tree;
#   find_package: the project in find_package/, after installing BUILD_DIR to a prefix;
#   find_package_build_tree: the same project, finding the package in BUILD_DIR itself;
#   fetchcontent: the project in fetchcontent/, FetchContent pointed at the source tree;
#   pkg_config, pkg_config_tls: CXX with the flags pkg-config gives for the installed
#   mesh.pc or mesh-tls.pc;
#   single_header, single_header_tls: CXX on mesh.hpp alone, copied to include/mesh/ as
#   the README says (with TLS: MESH_ENABLE_TLS=1 and -lssl -lcrypto).
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${what} failed:\n${output}")
  endif()
endfunction()

if(MODE MATCHES "^(find_package|pkg_config)")
  if(NOT MODE STREQUAL "find_package_build_tree")
    run("installing the library" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
  endif()
endif()

if(MODE MATCHES "^(add_subdirectory|find_package|fetchcontent)")
  set(project ${MODE})
  set(where -DCMAKE_PREFIX_PATH=${prefix})
  if(MODE STREQUAL "find_package_build_tree")
    set(project find_package)
    set(where -Dmesh_DIR=${BUILD_DIR})
  elseif(MODE STREQUAL "fetchcontent")
    set(where -DFETCHCONTENT_SOURCE_DIR_MESH=${MESH_SOURCE_DIR} -DFETCHCONTENT_FULLY_DISCONNECTED=ON)
  endif()
  run("configuring the consumer" ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/${project} -B ${WORK_DIR}/build
      -DMESH_SOURCE_DIR=${MESH_SOURCE_DIR} ${where} -DCMAKE_CXX_COMPILER=${CXX})
  run("building the consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
  set(program ${WORK_DIR}/build/mesh)
elseif(MODE MATCHES "^pkg_config")
  set(package mesh)
  if(MODE STREQUAL "pkg_config_tls")
    set(package mesh-tls)
  endif()
  set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig")
  execute_process(COMMAND pkg-config --cflags --libs ${package} RESULT_VARIABLE found OUTPUT_VARIABLE flags
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT found EQUAL 0)
    message(FATAL_ERROR "pkg-config does not know ${package}")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  file(MAKE_DIRECTORY ${WORK_DIR})
  set(program ${WORK_DIR}/mesh)
  run("compiling with pkg-config's flags" ${CXX} -std=c++17 ${CMAKE_CURRENT_LIST_DIR}/main.cpp ${flags} -o ${program})
elseif(MODE MATCHES "^single_header")
  file(COPY ${MESH_SOURCE_DIR}/mesh.hpp DESTINATION ${WORK_DIR}/include/mesh)
  set(tls)
  if(MODE STREQUAL "single_header_tls")
    set(tls -DMESH_ENABLE_TLS=1 -lssl -lcrypto)
  endif()
  set(program ${WORK_DIR}/mesh)
  run("compiling with the copied mesh.hpp" ${CXX} -std=c++17 -pthread -I${WORK_DIR}/include -I${ASIO_DIR}
      ${CMAKE_CURRENT_LIST_DIR}/main.cpp ${tls} -o ${program})
else()
  message(FATAL_ERROR "unknown MODE ${MODE}")
endif()

execute_process(COMMAND ${program} RESULT_VARIABLE ran OUTPUT_VARIABLE output)
message("${output}")
if(NOT ran EQUAL 0)
  message(FATAL_ERROR "the consumer program failed")
endif()

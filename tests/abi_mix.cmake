# Two versions of the library in one program must not link: abi_mix_define.cpp is built
# against a copy of the headers with another version number, abi_mix_call.cpp against
# these; linking them must fail on the function that takes a mesh::Payload. The same
# two files built against one version must link and run (so the failure is the version's).
file(REMOVE_RECURSE "${WORK_DIR}")
file(COPY ${MESH_SOURCE_DIR}/include DESTINATION ${WORK_DIR}/other)
file(READ ${WORK_DIR}/other/include/mesh/version.hpp version)
string(REPLACE "#define MESH_VERSION_MINOR 1" "#define MESH_VERSION_MINOR 99" version "${version}")
file(WRITE ${WORK_DIR}/other/include/mesh/version.hpp "${version}")

function(build out include)
  execute_process(COMMAND ${CXX} -std=c++17 -c -I${include} -I${ASIO_DIR} ${ARGN} -o ${out}
                  RESULT_VARIABLE result ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "compiling ${ARGN} failed:\n${output}")
  endif()
endfunction()
set(compile_dir ${MESH_SOURCE_DIR}/tests/compile)
build(${WORK_DIR}/define_same.o ${MESH_SOURCE_DIR}/include ${compile_dir}/abi_mix_define.cpp)
build(${WORK_DIR}/define_other.o ${WORK_DIR}/other/include ${compile_dir}/abi_mix_define.cpp)
build(${WORK_DIR}/call.o ${MESH_SOURCE_DIR}/include ${compile_dir}/abi_mix_call.cpp)

execute_process(COMMAND ${CXX} ${WORK_DIR}/call.o ${WORK_DIR}/define_same.o -pthread -o ${WORK_DIR}/same
                RESULT_VARIABLE linked ERROR_VARIABLE output)
if(NOT linked EQUAL 0)
  message(FATAL_ERROR "one version did not link:\n${output}")
endif()
execute_process(COMMAND ${WORK_DIR}/same RESULT_VARIABLE ran)
if(NOT ran EQUAL 0)
  message(FATAL_ERROR "one version linked but did not run")
endif()

execute_process(COMMAND ${CXX} ${WORK_DIR}/call.o ${WORK_DIR}/define_other.o -pthread -o ${WORK_DIR}/mixed
                RESULT_VARIABLE linked ERROR_VARIABLE output)
if(linked EQUAL 0)
  message(FATAL_ERROR "two versions linked into one program")
endif()
message("two versions refused at link time:\n${output}")

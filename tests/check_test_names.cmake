# CTest runs each doctest case by name, and a ';' splits a CMake list: a case named
# with one would be run by a filter that matches nothing, and pass without running.
execute_process(COMMAND ${TEST_BINARY} --list-test-cases --no-version
                OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${TEST_BINARY} --list-test-cases failed")
endif()
string(FIND "${listing}" ";" at)
if(NOT at EQUAL -1)
  message(FATAL_ERROR "a test case name contains ';', so CTest would never run it:\n${listing}")
endif()

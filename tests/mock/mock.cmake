# sluice-mock: the OpenAI-compatible mock provider (tests, benchmarks and
# the offline quickstart), plus its integration test.
file(GLOB mock_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.c)
add_executable(sluice-mock ${mock_sources})
target_link_libraries(sluice-mock PRIVATE
  PkgConfig::EVENT PkgConfig::JANSSON PkgConfig::XXHASH Threads::Threads m)
set_target_properties(sluice-mock PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
install(TARGETS sluice-mock RUNTIME DESTINATION bin)

# Starts the mock on port 0 and checks it over HTTP (python3 + curl).
find_program(MOCK_CURL curl)
find_package(Python3 COMPONENTS Interpreter)
if(MOCK_CURL AND Python3_Interpreter_FOUND)
  add_test(NAME mock_provider
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_mock.py
            $<TARGET_FILE:sluice-mock>)
  set_tests_properties(mock_provider PROPERTIES LABELS integration TIMEOUT 60)
else()
  message(STATUS "sluice-mock test skipped: needs curl and python3")
endif()

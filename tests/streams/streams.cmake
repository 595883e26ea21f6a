# Streams: assembling a streamed answer into one object, and serving a
# complete answer as a stream. Both are pure functions over JSON, compiled
# from their own sources (plus the JSON scanner the assembler reads with).
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

sluice_add_unit_test(test_stream_assemble
  ${CMAKE_CURRENT_LIST_DIR}/test_stream_assemble.c
  ${CMAKE_SOURCE_DIR}/core/stream_assemble.c
  ${CMAKE_SOURCE_DIR}/core/json_scan.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON)

sluice_add_unit_test(test_stream_answer
  ${CMAKE_CURRENT_LIST_DIR}/test_stream_answer.c
  ${CMAKE_SOURCE_DIR}/core/stream_answer.c
  ${CMAKE_SOURCE_DIR}/core/stream_assemble.c
  ${CMAKE_SOURCE_DIR}/core/json_scan.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON)

# A test plugin for the stream services (not shipped: built next to, not
# into, build/plugins/), and the integration tests that load it into the
# real gateway in front of the mock provider.
add_library(stream_probe MODULE ${CMAKE_CURRENT_LIST_DIR}/plugins/stream_probe.c)
set_target_properties(stream_probe PROPERTIES
  PREFIX ""
  C_VISIBILITY_PRESET hidden
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/test_plugins)
target_include_directories(stream_probe PRIVATE ${CMAKE_SOURCE_DIR}/sdk)
target_link_libraries(stream_probe PRIVATE Threads::Threads)
if(NOT SANITIZE STREQUAL "none")
  target_link_options(stream_probe PRIVATE -Wl,--allow-shlib-undefined)
endif()

if(TARGET sluice)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  # Coalescing 50 identical streamed requests (threads on both sides: TSan).
  add_test(NAME it_coalesce_streams
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_coalesce_streams.py
            --build-dir ${CMAKE_BINARY_DIR})
  set_tests_properties(it_coalesce_streams PROPERTIES
    LABELS "integration;concurrency" TIMEOUT 300)
  # Whole answers of completions streams and of cut streams.
  add_test(NAME it_stream_whole
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_stream_whole.py
            --build-dir ${CMAKE_BINARY_DIR})
  set_tests_properties(it_stream_whole PROPERTIES LABELS integration TIMEOUT 300)
  # A stored answer replayed as a stream, read by the official openai client
  # (needs node and npm, like it_test_openai_client).
  add_test(NAME it_stream_replay_openai
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_stream_replay_openai.py
            --build-dir ${CMAKE_BINARY_DIR})
  set_tests_properties(it_stream_replay_openai PROPERTIES
    LABELS integration TIMEOUT 300)
endif()

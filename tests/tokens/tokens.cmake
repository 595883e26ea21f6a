# Tokenizer tests: unit tests (fixed ids from tiktoken, the fast paths
# against the reference, chat framing, model table, config) and the golden
# comparison with the npm tiktoken package over a >= 5 MB corpus.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
sluice_add_unit_test(test_tokens
  ${CMAKE_SOURCE_DIR}/tests/tokens/test_tokens.c
  LIBS sluice_core PkgConfig::CMOCKA)
sluice_add_unit_test(test_long_pieces
  ${CMAKE_SOURCE_DIR}/tests/tokens/test_long_pieces.c
  LIBS sluice_core PkgConfig::CMOCKA)
sluice_add_unit_test(test_tokens_request
  ${CMAKE_SOURCE_DIR}/tests/tokens/test_tokens_request.c
  LIBS sluice_core PkgConfig::CMOCKA)

add_executable(tok_tool ${CMAKE_SOURCE_DIR}/tests/tokens/tok_tool.c)
target_include_directories(tok_tool PRIVATE ${CMAKE_SOURCE_DIR}/core/tokens)
target_link_libraries(tok_tool PRIVATE sluice_core)
set_target_properties(tok_tool PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME tokens_golden COMMAND ${Python3_EXECUTABLE}
  ${CMAKE_SOURCE_DIR}/tests/tokens/test_golden.py --build-dir ${CMAKE_BINARY_DIR})
set_tests_properties(tokens_golden PROPERTIES LABELS "tokens" TIMEOUT 900)

# bench/tokens/run.sh builds this (not part of the default build).
add_executable(bench_tokens EXCLUDE_FROM_ALL
  ${CMAKE_SOURCE_DIR}/bench/tokens/bench_tokens.c)
target_link_libraries(bench_tokens PRIVATE sluice_core)
set_target_properties(bench_tokens PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

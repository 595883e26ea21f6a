# Differential libFuzzer target for the request decoder (clang only): every
# input is decoded by core/json_scan.c + core/api_request.c and by the old
# jansson-based decoder (tests/fuzz/api_request_ref.c), and by jscan_document
# and json_loadb; any disagreement aborts. New inputs go to the build dir
# so the checked-in seeds stay as committed; crashes to tests/fuzz/artifacts/.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang" AND NOT SANITIZE STREQUAL "thread")
  set(fuzz_api_sanitizers -fsanitize=fuzzer,address,undefined)
  add_executable(fuzz_api_request
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_api_request.c
    ${CMAKE_SOURCE_DIR}/tests/fuzz/api_request_ref.c
    ${CMAKE_SOURCE_DIR}/core/api_request.c
    ${CMAKE_SOURCE_DIR}/core/json_scan.c)
  target_include_directories(fuzz_api_request PRIVATE
    ${CMAKE_SOURCE_DIR}/core ${CMAKE_SOURCE_DIR}/tests/fuzz)
  target_compile_options(fuzz_api_request PRIVATE ${fuzz_api_sanitizers}
    -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(fuzz_api_request PRIVATE ${fuzz_api_sanitizers})
  target_link_libraries(fuzz_api_request PRIVATE PkgConfig::JANSSON m)

  set(fuzz_api_work ${CMAKE_BINARY_DIR}/fuzz-corpus/api_request)
  set(fuzz_api_artifacts ${CMAKE_SOURCE_DIR}/tests/fuzz/artifacts)
  file(MAKE_DIRECTORY ${fuzz_api_work} ${fuzz_api_artifacts})
  add_test(NAME fuzz_api_request
    COMMAND fuzz_api_request -max_total_time=20 -max_len=16384 -timeout=10
            -dict=${CMAKE_SOURCE_DIR}/tests/fuzz/api_request.dict
            -artifact_prefix=${fuzz_api_artifacts}/api_request-
            ${fuzz_api_work} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/api_request)
  set_tests_properties(fuzz_api_request PROPERTIES LABELS fuzz TIMEOUT 120)
endif()

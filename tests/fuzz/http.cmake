# libFuzzer target for the HTTP request framing (pre-scan + llhttp + body
# decoding). Clang only. llhttp's sources are compiled in with coverage so
# the fuzzer can steer through them too.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
  add_executable(fuzz_http_request
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_http_request.c
    ${CMAKE_SOURCE_DIR}/core/http_parse.c
    ${CMAKE_SOURCE_DIR}/core/http_prescan.c
    ${LLHTTP_C} ${LLHTTP_API_C} ${LLHTTP_HTTP_C})
  set_source_files_properties(${LLHTTP_C} ${LLHTTP_API_C} ${LLHTTP_HTTP_C}
    TARGET_DIRECTORY fuzz_http_request PROPERTIES COMPILE_OPTIONS -w)
  target_include_directories(fuzz_http_request PRIVATE
    ${CMAKE_SOURCE_DIR}/core ${LLHTTP_INCLUDE})
  target_compile_options(fuzz_http_request PRIVATE
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g)
  target_link_options(fuzz_http_request PRIVATE
    -fsanitize=fuzzer,address,undefined)

  # New inputs go to a corpus in the build tree; the checked-in seeds are
  # only read, so a test run never modifies the source tree.
  set(FUZZ_HTTP_WORK ${CMAKE_BINARY_DIR}/fuzz/corpus/http_request)
  file(MAKE_DIRECTORY ${FUZZ_HTTP_WORK})
  add_test(NAME fuzz_http_request
    COMMAND fuzz_http_request -max_total_time=20 -artifact_prefix=${CMAKE_BINARY_DIR}/fuzz/
            ${FUZZ_HTTP_WORK} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/http_request)
  set_tests_properties(fuzz_http_request PROPERTIES LABELS fuzz TIMEOUT 120)
endif()

# libFuzzer targets for HTTP framing: client requests (pre-scan + llhttp +
# body decoding) and upstream responses (header block, 1xx skipping,
# Content-Length, chunked, until-close). Clang only. llhttp's sources are
# compiled in with coverage so the fuzzer can steer through them too.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
  set(FUZZ_HTTP_COMMON
    ${CMAKE_SOURCE_DIR}/core/http/http_head.c
    ${CMAKE_SOURCE_DIR}/core/http/http_chunked.c
    ${CMAKE_SOURCE_DIR}/core/http/http_prescan.c
    ${LLHTTP_C} ${LLHTTP_API_C} ${LLHTTP_HTTP_C})

  # sluice_http_fuzzer(NAME CORPUS SOURCES...)
  function(sluice_http_fuzzer name corpus)
    add_executable(${name} ${ARGN} ${FUZZ_HTTP_COMMON})
    set_source_files_properties(${LLHTTP_C} ${LLHTTP_API_C} ${LLHTTP_HTTP_C}
      TARGET_DIRECTORY ${name} PROPERTIES COMPILE_OPTIONS -w)
    target_include_directories(${name} PRIVATE
      ${CMAKE_SOURCE_DIR}/core ${LLHTTP_INCLUDE})
    target_compile_options(${name} PRIVATE
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    # New inputs go to a corpus in the build tree; the checked-in seeds are
    # only read, so a test run never modifies the source tree.
    set(work ${CMAKE_BINARY_DIR}/fuzz/corpus/${corpus})
    file(MAKE_DIRECTORY ${work})
    add_test(NAME ${name}
      COMMAND ${name} -max_total_time=20 -artifact_prefix=${CMAKE_BINARY_DIR}/fuzz/
              ${work} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${corpus})
    set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 120)
  endfunction()

  sluice_http_fuzzer(fuzz_http_request http_request
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_http_request.c
    ${CMAKE_SOURCE_DIR}/core/http/http_parse.c)
  sluice_http_fuzzer(fuzz_http_response http_response
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_http_response.c
    ${CMAKE_SOURCE_DIR}/core/http/http_response.c)
endif()

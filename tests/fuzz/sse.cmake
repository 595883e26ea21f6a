# libFuzzer target for the SSE parser (clang only). The ctest run is short
# and labelled "fuzz"; new inputs go to the build dir so the checked-in
# seed corpus stays as committed, crashes to tests/fuzz/artifacts/.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang" AND NOT SANITIZE STREQUAL "thread")
  set(fuzz_sanitizers -fsanitize=fuzzer,address,undefined)
  add_executable(fuzz_sse
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_sse.c
    ${CMAKE_SOURCE_DIR}/core/upstream/sse.c)
  target_include_directories(fuzz_sse PRIVATE ${CMAKE_SOURCE_DIR}/core)
  target_compile_options(fuzz_sse PRIVATE ${fuzz_sanitizers} -fno-omit-frame-pointer)
  target_link_options(fuzz_sse PRIVATE ${fuzz_sanitizers})
  target_link_libraries(fuzz_sse PRIVATE PkgConfig::JANSSON)

  set(fuzz_sse_work ${CMAKE_BINARY_DIR}/fuzz-corpus/sse)
  set(fuzz_artifacts ${CMAKE_SOURCE_DIR}/tests/fuzz/artifacts)
  file(MAKE_DIRECTORY ${fuzz_sse_work} ${fuzz_artifacts})
  add_test(NAME fuzz_sse
    COMMAND fuzz_sse -max_total_time=20 -max_len=8192
            -artifact_prefix=${fuzz_artifacts}/sse-
            ${fuzz_sse_work} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/sse)
  set_tests_properties(fuzz_sse PROPERTIES LABELS fuzz TIMEOUT 120)
endif()

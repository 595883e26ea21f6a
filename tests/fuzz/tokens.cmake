# libFuzzer target for the tokenizer (clang only): the fast paths against
# the reference implementation on random bytes. Built from the tokenizer
# sources alone (SLUICE_TOKENIZER_SOURCES, core/tokens/tokens.cmake).
if(CMAKE_C_COMPILER_ID STREQUAL "Clang" AND NOT SANITIZE STREQUAL "thread")
  set(fuzz_sanitizers -fsanitize=fuzzer,address,undefined)
  add_executable(fuzz_tokens
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_tokens.c ${SLUICE_TOKENIZER_SOURCES})
  target_include_directories(fuzz_tokens PRIVATE ${CMAKE_SOURCE_DIR}/core/tokens)
  target_compile_definitions(fuzz_tokens PRIVATE SLUICE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_compile_options(fuzz_tokens PRIVATE ${fuzz_sanitizers} -fno-omit-frame-pointer)
  target_link_options(fuzz_tokens PRIVATE ${fuzz_sanitizers})
  target_link_libraries(fuzz_tokens PRIVATE PkgConfig::PCRE2 PkgConfig::XXHASH Threads::Threads)

  set(fuzz_tokens_work ${CMAKE_BINARY_DIR}/fuzz-corpus/tokens)
  set(fuzz_artifacts ${CMAKE_SOURCE_DIR}/tests/fuzz/artifacts)
  file(MAKE_DIRECTORY ${fuzz_tokens_work} ${fuzz_artifacts})
  add_test(NAME fuzz_tokens
    COMMAND fuzz_tokens -max_total_time=30 -max_len=1024
            -artifact_prefix=${fuzz_artifacts}/tokens-
            ${fuzz_tokens_work} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/tokens)
  set_tests_properties(fuzz_tokens PROPERTIES LABELS fuzz TIMEOUT 180)
endif()

# libFuzzer target for the multipart/form-data reader (clang only): the
# bodies of plugin uploads are untrusted. New inputs go to the build dir so
# the checked-in seeds stay as committed; crashes to tests/fuzz/artifacts/.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang" AND NOT SANITIZE STREQUAL "thread")
  set(fuzz_mp_sanitizers -fsanitize=fuzzer,address,undefined)
  add_executable(fuzz_multipart
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_multipart.c
    ${CMAKE_SOURCE_DIR}/core/http/multipart.c)
  target_include_directories(fuzz_multipart PRIVATE ${CMAKE_SOURCE_DIR}/core)
  target_compile_options(fuzz_multipart PRIVATE ${fuzz_mp_sanitizers}
    -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(fuzz_multipart PRIVATE ${fuzz_mp_sanitizers})

  set(fuzz_mp_work ${CMAKE_BINARY_DIR}/fuzz-corpus/multipart)
  set(fuzz_mp_artifacts ${CMAKE_SOURCE_DIR}/tests/fuzz/artifacts)
  file(MAKE_DIRECTORY ${fuzz_mp_work} ${fuzz_mp_artifacts})
  add_test(NAME fuzz_multipart
    COMMAND fuzz_multipart -max_total_time=20 -max_len=16384 -timeout=10
            -artifact_prefix=${fuzz_mp_artifacts}/multipart-
            ${fuzz_mp_work} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/multipart)
  set_tests_properties(fuzz_multipart PROPERTIES LABELS fuzz TIMEOUT 120)
endif()

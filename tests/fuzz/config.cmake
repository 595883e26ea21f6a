# libFuzzer target for the config loader (clang only). Like the unit test it
# compiles the config sources itself instead of linking sluice_core. New
# inputs go to the build dir so the checked-in seeds stay as committed;
# crashes go to tests/fuzz/artifacts/.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang" AND NOT SANITIZE STREQUAL "thread")
  set(fuzz_config_sanitizers -fsanitize=fuzzer,address,undefined)
  add_executable(fuzz_config
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_config.c
    ${CMAKE_SOURCE_DIR}/core/config/config.c
    ${CMAKE_SOURCE_DIR}/core/config/config_parse.c
    ${CMAKE_SOURCE_DIR}/core/config/config_retry.c
    ${CMAKE_SOURCE_DIR}/core/config/config_keys.c
    ${CMAKE_SOURCE_DIR}/core/config/config_route.c
    ${CMAKE_SOURCE_DIR}/core/config/config_tokens.c
    ${CMAKE_SOURCE_DIR}/core/tokens/tokens_config.c
    ${CMAKE_SOURCE_DIR}/core/tokens/model_encoding.c
    ${CMAKE_SOURCE_DIR}/core/tokens/encoding_names.c)
  target_include_directories(fuzz_config PRIVATE ${CMAKE_SOURCE_DIR}/core)
  target_compile_definitions(fuzz_config PRIVATE
    SLUICE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_compile_options(fuzz_config PRIVATE ${fuzz_config_sanitizers}
    -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(fuzz_config PRIVATE ${fuzz_config_sanitizers})
  target_link_libraries(fuzz_config PRIVATE PkgConfig::JANSSON
    PkgConfig::CRYPTO)

  set(fuzz_config_work ${CMAKE_BINARY_DIR}/fuzz-corpus/config)
  set(fuzz_config_artifacts ${CMAKE_SOURCE_DIR}/tests/fuzz/artifacts)
  file(MAKE_DIRECTORY ${fuzz_config_work} ${fuzz_config_artifacts})
  add_test(NAME fuzz_config
    COMMAND fuzz_config -max_total_time=20 -max_len=65536 -timeout=10
            -artifact_prefix=${fuzz_config_artifacts}/config-
            ${fuzz_config_work} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/config)
  set_tests_properties(fuzz_config PROPERTIES LABELS fuzz TIMEOUT 120)
endif()

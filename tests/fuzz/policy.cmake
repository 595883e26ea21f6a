# libFuzzer target for the Lua policy engine (clang only): each input is
# the expression a policy's decide() returns, so the fuzzer explores the
# return-value validation and, through arbitrary Lua, the sandbox. Compiles
# the policy sources itself instead of linking sluice_core. New inputs go
# to the build dir so the checked-in seeds stay as committed; crashes go to
# tests/fuzz/artifacts/.
if(CMAKE_C_COMPILER_ID STREQUAL "Clang" AND NOT SANITIZE STREQUAL "thread")
  set(fuzz_policy_sanitizers -fsanitize=fuzzer,address,undefined)
  add_executable(fuzz_policy_decision
    ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_policy_decision.c
    ${CMAKE_SOURCE_DIR}/core/policy/policy.c
    ${CMAKE_SOURCE_DIR}/core/policy/policy_sandbox.c
    ${CMAKE_SOURCE_DIR}/core/policy/policy_view.c
    ${CMAKE_SOURCE_DIR}/core/policy/policy_decision.c
    ${CMAKE_SOURCE_DIR}/core/policy/policy_memo.c
    ${CMAKE_SOURCE_DIR}/core/policy/policy_state.c)
  target_include_directories(fuzz_policy_decision PRIVATE
    ${CMAKE_SOURCE_DIR}/core)
  target_compile_options(fuzz_policy_decision PRIVATE
    ${fuzz_policy_sanitizers} -fno-sanitize-recover=all
    -fno-omit-frame-pointer)
  target_link_options(fuzz_policy_decision PRIVATE ${fuzz_policy_sanitizers})
  target_link_libraries(fuzz_policy_decision PRIVATE PkgConfig::LUA
    PkgConfig::JANSSON m)

  set(fuzz_policy_work ${CMAKE_BINARY_DIR}/fuzz-corpus/policy)
  set(fuzz_policy_artifacts ${CMAKE_SOURCE_DIR}/tests/fuzz/artifacts)
  file(MAKE_DIRECTORY ${fuzz_policy_work} ${fuzz_policy_artifacts})
  add_test(NAME fuzz_policy_decision
    COMMAND fuzz_policy_decision -max_total_time=20 -max_len=4096 -timeout=10
            -artifact_prefix=${fuzz_policy_artifacts}/policy-
            ${fuzz_policy_work} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/policy)
  set_tests_properties(fuzz_policy_decision PROPERTIES LABELS fuzz
    TIMEOUT 120)
endif()

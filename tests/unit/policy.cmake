# Lua policy engine: compiled from its own sources only (not sluice_core),
# so the tests do not depend on the rest of core/ building.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

set(policy_engine_sources
  ${CMAKE_SOURCE_DIR}/core/policy/policy.c
  ${CMAKE_SOURCE_DIR}/core/policy/policy_sandbox.c
  ${CMAKE_SOURCE_DIR}/core/policy/policy_view.c
  ${CMAKE_SOURCE_DIR}/core/policy/policy_decision.c
  ${CMAKE_SOURCE_DIR}/core/policy/policy_memo.c
  ${CMAKE_SOURCE_DIR}/core/policy/policy_state.c
  ${CMAKE_SOURCE_DIR}/tests/unit/policy_fakes.c)

sluice_add_unit_test(test_policy
  ${CMAKE_SOURCE_DIR}/tests/unit/test_policy.c ${policy_engine_sources}
  LIBS PkgConfig::CMOCKA PkgConfig::LUA PkgConfig::JANSSON m)
target_compile_definitions(test_policy PRIVATE
  POLICY_TEST_DIR="${CMAKE_SOURCE_DIR}/tests/unit/policies"
  POLICY_EXAMPLES_DIR="${CMAKE_SOURCE_DIR}/policies")

# Reuse of a pure policy's decisions (decide_is_pure).
sluice_add_unit_test(test_policy_memo
  ${CMAKE_SOURCE_DIR}/tests/unit/test_policy_memo.c ${policy_engine_sources}
  LIBS PkgConfig::CMOCKA PkgConfig::LUA PkgConfig::JANSSON m)
target_compile_definitions(test_policy_memo PRIVATE
  POLICY_EXAMPLES_DIR="${CMAKE_SOURCE_DIR}/policies")

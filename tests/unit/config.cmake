# Config loader and client-key store. Built from the config sources alone
# (not sluice_core), so it does not depend on the rest of core/.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

sluice_add_unit_test(test_config
  ${CMAKE_SOURCE_DIR}/tests/unit/test_config.c
  ${CMAKE_SOURCE_DIR}/core/config/config.c
  ${CMAKE_SOURCE_DIR}/core/config/config_parse.c
  ${CMAKE_SOURCE_DIR}/core/config/config_retry.c
  ${CMAKE_SOURCE_DIR}/core/config/config_keys.c
  ${CMAKE_SOURCE_DIR}/core/config/config_route.c
  ${CMAKE_SOURCE_DIR}/core/config/config_tokens.c
  ${CMAKE_SOURCE_DIR}/core/tokens/tokens_config.c
  ${CMAKE_SOURCE_DIR}/core/tokens/model_encoding.c
  ${CMAKE_SOURCE_DIR}/core/tokens/encoding_names.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON PkgConfig::CRYPTO)
target_compile_definitions(test_config PRIVATE
  SLUICE_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
  SLUICE_BUILD_DIR="${CMAKE_BINARY_DIR}")

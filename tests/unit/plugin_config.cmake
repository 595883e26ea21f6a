# Plugin config key tables: fill (nested types, JSON-path errors), load-time
# table checks and plugin-help text, from the config sources alone.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

sluice_add_unit_test(test_plugin_config
  ${CMAKE_SOURCE_DIR}/tests/unit/test_plugin_config.c
  ${CMAKE_SOURCE_DIR}/core/config/plugin_config.c
  ${CMAKE_SOURCE_DIR}/core/config/plugin_config_check.c
  ${CMAKE_SOURCE_DIR}/core/config/plugin_config_help.c
  ${CMAKE_SOURCE_DIR}/core/config/cfg_units.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON m)

if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
# Route registration, the per-generation table, matching and conflicts;
# links the core (the route table lives in a generation).
sluice_add_unit_test(test_plugin_routes
  ${CMAKE_SOURCE_DIR}/tests/unit/test_plugin_routes.c
  LIBS sluice_core PkgConfig::CMOCKA)

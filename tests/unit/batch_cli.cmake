if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
sluice_add_unit_test(test_batch_cli
  ${CMAKE_SOURCE_DIR}/tests/unit/test_batch_cli.c
  LIBS sluice_core PkgConfig::CMOCKA)

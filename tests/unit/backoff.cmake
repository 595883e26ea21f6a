if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
sluice_add_unit_test(test_backoff
  ${CMAKE_SOURCE_DIR}/tests/unit/test_backoff.c
  ${CMAKE_SOURCE_DIR}/core/upstream/backoff.c
  LIBS PkgConfig::CMOCKA)

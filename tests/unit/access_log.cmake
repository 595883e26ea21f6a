if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
sluice_add_unit_test(test_access_log
  ${CMAKE_SOURCE_DIR}/tests/unit/test_access_log.c
  ${CMAKE_SOURCE_DIR}/core/log.c
  LIBS PkgConfig::CMOCKA Threads::Threads)

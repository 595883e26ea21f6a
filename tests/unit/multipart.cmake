if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
sluice_add_unit_test(test_multipart
  ${CMAKE_SOURCE_DIR}/tests/unit/test_multipart.c
  ${CMAKE_SOURCE_DIR}/core/http/multipart.c
  LIBS PkgConfig::CMOCKA)

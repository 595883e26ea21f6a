if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
sluice_add_unit_test(test_content_decode
  ${CMAKE_SOURCE_DIR}/tests/unit/test_content_decode.c
  ${CMAKE_SOURCE_DIR}/core/upstream/content_decode.c
  LIBS PkgConfig::CMOCKA PkgConfig::ZLIB)

# The strict JSON scanner and the request decoder built on it. Compiled
# from their sources alone; jansson is linked as the reference the scanner
# must agree with.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

sluice_add_unit_test(test_json_scan
  ${CMAKE_SOURCE_DIR}/tests/unit/test_json_scan.c
  ${CMAKE_SOURCE_DIR}/core/json_scan.c
  ${CMAKE_SOURCE_DIR}/core/api_request.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON m)

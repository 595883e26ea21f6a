# The SDK's fake host answers plugin calls with the core's rules (phases,
# header checks, status clamp, error bodies) and opens instances from JSON.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

if(TARGET sluice_testing)
  sluice_add_unit_test(test_fake_host
    ${CMAKE_SOURCE_DIR}/tests/unit/test_fake_host.c
    LIBS sluice_testing PkgConfig::CMOCKA)
endif()

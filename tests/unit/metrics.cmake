# Unit tests for the metrics registry, the health map and logging. They
# compile only their own sources (not sluice_core), so they build while
# the rest of core/ is in flux.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

sluice_add_unit_test(test_metrics
  ${CMAKE_SOURCE_DIR}/tests/unit/test_metrics.c
  ${CMAKE_SOURCE_DIR}/core/metrics.c
  ${CMAKE_SOURCE_DIR}/core/metrics_vec.c
  ${CMAKE_SOURCE_DIR}/core/log.c
  LIBS PkgConfig::CMOCKA Threads::Threads m)

sluice_add_unit_test(test_health
  ${CMAKE_SOURCE_DIR}/tests/unit/test_health.c
  ${CMAKE_SOURCE_DIR}/core/health.c
  ${CMAKE_SOURCE_DIR}/core/log.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON Threads::Threads m)

# HTTP server layer: pre-scan/framing table tests and socket-level server
# tests. They compile only the http_* sources (plus openai_error.c) so they
# do not depend on the rest of core/ building.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

set(SLUICE_HTTP_CORE
  ${CMAKE_SOURCE_DIR}/core/http/http_server.c
  ${CMAKE_SOURCE_DIR}/core/http/http_conn.c
  ${CMAKE_SOURCE_DIR}/core/http/http_parse.c
  ${CMAKE_SOURCE_DIR}/core/http/http_chunked.c
  ${CMAKE_SOURCE_DIR}/core/http/http_head.c
  ${CMAKE_SOURCE_DIR}/core/http/http_prescan.c
  ${CMAKE_SOURCE_DIR}/core/http/http_status.c
  ${CMAKE_SOURCE_DIR}/core/http/openai_error.c)

sluice_add_unit_test(test_http_prescan
  ${CMAKE_SOURCE_DIR}/tests/unit/test_http_prescan.c
  ${CMAKE_SOURCE_DIR}/core/http/http_prescan.c
  ${CMAKE_SOURCE_DIR}/core/http/http_parse.c
  ${CMAKE_SOURCE_DIR}/core/http/http_chunked.c
  ${CMAKE_SOURCE_DIR}/core/http/http_head.c
  LIBS llhttp_debian PkgConfig::CMOCKA)

sluice_add_unit_test(test_http_server
  ${CMAKE_SOURCE_DIR}/tests/unit/test_http_server.c
  ${SLUICE_HTTP_CORE}
  LIBS llhttp_debian PkgConfig::EVENT PkgConfig::JANSSON PkgConfig::CMOCKA
       Threads::Threads)

# Unit tests for the upstream HTTP client (both transports) and the SSE
# parser. They link only their own sources, not sluice_core.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

sluice_add_unit_test(test_sse
  ${CMAKE_SOURCE_DIR}/tests/unit/test_sse.c
  ${CMAKE_SOURCE_DIR}/core/upstream/sse.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON)

sluice_add_unit_test(test_upstream_client
  ${CMAKE_SOURCE_DIR}/tests/unit/test_upstream_client.c
  ${CMAKE_SOURCE_DIR}/core/upstream/upstream_client.c
  ${CMAKE_SOURCE_DIR}/core/upstream/upstream_curl.c
  ${CMAKE_SOURCE_DIR}/core/upstream/upstream_curl_request.c
  ${CMAKE_SOURCE_DIR}/core/upstream/upstream_h1.c
  ${CMAKE_SOURCE_DIR}/core/upstream/upstream_h1_host.c
  ${CMAKE_SOURCE_DIR}/core/upstream/upstream_h1_request.c
  ${CMAKE_SOURCE_DIR}/core/http/http_response.c
  ${CMAKE_SOURCE_DIR}/core/http/http_chunked.c
  ${CMAKE_SOURCE_DIR}/core/http/http_head.c
  ${CMAKE_SOURCE_DIR}/core/http/http_prescan.c
  LIBS llhttp_debian PkgConfig::CMOCKA PkgConfig::EVENT PkgConfig::CURL)

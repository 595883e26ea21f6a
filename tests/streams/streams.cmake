# Streams: assembling a streamed answer into one object, and serving a
# complete answer as a stream. Both are pure functions over JSON, compiled
# from their own sources.
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

sluice_add_unit_test(test_stream_assemble
  ${CMAKE_CURRENT_LIST_DIR}/test_stream_assemble.c
  ${CMAKE_SOURCE_DIR}/core/stream_assemble.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON)

sluice_add_unit_test(test_stream_answer
  ${CMAKE_CURRENT_LIST_DIR}/test_stream_answer.c
  ${CMAKE_SOURCE_DIR}/core/stream_answer.c
  ${CMAKE_SOURCE_DIR}/core/stream_assemble.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON)

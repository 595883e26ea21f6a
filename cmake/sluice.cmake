# sluice_add_plugin(NAME SOURCES...): a dlopen-able plugin in build/plugins/NAME.so
# that exports exactly one symbol and links with -z defs (nothing points into core).
function(sluice_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/plugins)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/sdk)
  if(NOT SANITIZE STREQUAL "none")
    # Sanitizer runtimes live in the executable; -z defs would reject their symbols.
    target_link_options(${name} PRIVATE -Wl,--allow-shlib-undefined)
  else()
    target_link_options(${name} PRIVATE -Wl,-z,defs)
  endif()
endfunction()

# sluice_add_unit_test(NAME SOURCES... [LIBS libs...]): a test binary registered with ctest.
function(sluice_add_unit_test name)
  cmake_parse_arguments(T "" "" "LIBS" ${ARGN})
  add_executable(${name} ${T_UNPARSED_ARGUMENTS})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/sdk ${CMAKE_SOURCE_DIR}/core ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  set(labels unit)
  # Threaded tests also run in the TSan build (ctest -L concurrency).
  if(name IN_LIST SLUICE_CONCURRENCY_TESTS)
    list(APPEND labels concurrency)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT 120)
endfunction()

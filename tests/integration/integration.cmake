# Integration tests: the real sluice binary + the bundled mock provider on
# 127.0.0.1. Each test_*.py is one ctest test. Files whose name contains
# "concurrency" also get the `concurrency` label (run again under TSan).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
file(GLOB integration_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.py)
foreach(t ${integration_tests})
  get_filename_component(name ${t} NAME_WE)
  if(name STREQUAL "test_example_plugin" OR name STREQUAL "test_openai_client")
    continue() # driven by scripts/test-sdk-install.sh / needs npm, see below
  endif()
  add_test(NAME it_${name} COMMAND ${Python3_EXECUTABLE} ${t} --build-dir ${CMAKE_BINARY_DIR})
  set(labels integration)
  if(name MATCHES "concurrency|reload|drain")
    list(APPEND labels concurrency)
  endif()
  set_tests_properties(it_${name} PROPERTIES LABELS "${labels}" TIMEOUT 300)
endforeach()
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/test_openai_client.py)
  add_test(NAME it_test_openai_client COMMAND ${Python3_EXECUTABLE}
           ${CMAKE_CURRENT_LIST_DIR}/test_openai_client.py --build-dir ${CMAKE_BINARY_DIR})
  set_tests_properties(it_test_openai_client PROPERTIES LABELS integration TIMEOUT 300)
endif()

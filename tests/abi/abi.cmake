# ABI tests: deliberately broken plugins, each loaded through the real
# loader, which must refuse it with a message naming the file; plus the CI
# checks on the real plugins (exported symbols, documented config keys).
if(NOT TARGET PkgConfig::CMOCKA)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

set(ABI_PLUGIN_DIR ${CMAKE_BINARY_DIR}/abi_plugins)
set(ABI_PLUGIN_SRC ${CMAKE_CURRENT_LIST_DIR}/plugins)

# Like sluice_add_plugin, but into abi_plugins/ so that the exports check
# on build/plugins/ never sees these on purpose broken files.
function(sluice_abi_plugin name source)
  add_library(abi_${name} MODULE ${ABI_PLUGIN_SRC}/${source})
  set_target_properties(abi_${name} PROPERTIES
    OUTPUT_NAME ${name}
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY ${ABI_PLUGIN_DIR})
  target_include_directories(abi_${name} PRIVATE ${CMAKE_SOURCE_DIR}/sdk)
  if(NOT SANITIZE STREQUAL "none")
    target_link_options(abi_${name} PRIVATE -Wl,--allow-shlib-undefined)
  else()
    target_link_options(abi_${name} PRIVATE -Wl,-z,defs)
  endif()
  set(abi_plugin_targets ${abi_plugin_targets} abi_${name} PARENT_SCOPE)
endfunction()

set(abi_plugin_targets "")
sluice_abi_plugin(wrong_major wrong_major.c)
sluice_abi_plugin(newer_minor newer_minor.c)
sluice_abi_plugin(short_struct short_struct.c)
sluice_abi_plugin(missing_symbol missing_symbol.c)
sluice_abi_plugin(abi0 abi0.c)
sluice_abi_plugin(null_entry null_entry.c)
sluice_abi_plugin(dup_a dup.c)
sluice_abi_plugin(dup_b dup.c)
sluice_abi_plugin(bad_config_table bad_config_table.c)
sluice_abi_plugin(good_min good_min.c)
sluice_abi_plugin(phase_probe phase_probe.c)
# SDK 1.1 host services, each used by a test plugin (test_host_services.py).
sluice_abi_plugin(embed_probe embed_probe.c)
sluice_abi_plugin(timer_probe timer_probe.c)
# A plugin binary as built before ABI 1.1: compiled against the frozen 1.0
# headers, it must load and work on this core.
sluice_abi_plugin(compat_v10 compat_v10.c)
set_property(TARGET abi_compat_v10 PROPERTY INCLUDE_DIRECTORIES
  ${CMAKE_CURRENT_LIST_DIR}/sdk-1.0)
# Routes, multipart uploads, self-submitted requests (test_plugin_routes.py).
sluice_abi_plugin(route_probe route_probe.c)

sluice_add_unit_test(test_abi
  ${CMAKE_CURRENT_LIST_DIR}/test_abi.c
  ${CMAKE_SOURCE_DIR}/core/plugin_loader.c
  ${CMAKE_SOURCE_DIR}/core/config/plugin_config.c
  ${CMAKE_SOURCE_DIR}/core/config/plugin_config_check.c
  ${CMAKE_SOURCE_DIR}/core/config/cfg_units.c
  LIBS PkgConfig::CMOCKA PkgConfig::JANSSON ${CMAKE_DL_LIBS} m)
target_compile_definitions(test_abi PRIVATE
  ABI_PLUGIN_DIR="${ABI_PLUGIN_DIR}"
  NOOP_PLUGIN="${CMAKE_BINARY_DIR}/plugins/noop.so")
add_dependencies(test_abi ${abi_plugin_targets})
if(TARGET noop)
  add_dependencies(test_abi noop)
endif()

# The real plugins are MODULE libraries written to build/plugins/ by
# sluice_add_plugin; collect their targets so the checks below can make
# sure they are built (ctest cannot depend on a build target directly).
set(sluice_plugin_targets "")
file(GLOB plugin_src_dirs LIST_DIRECTORIES true ${CMAKE_SOURCE_DIR}/plugins/*)
foreach(dir ${plugin_src_dirs})
  if(EXISTS ${dir}/CMakeLists.txt)
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t ${targets})
      get_target_property(type ${t} TYPE)
      get_target_property(out ${t} LIBRARY_OUTPUT_DIRECTORY)
      if(type STREQUAL "MODULE_LIBRARY" AND out STREQUAL "${CMAKE_BINARY_DIR}/plugins")
        list(APPEND sluice_plugin_targets ${t})
      endif()
    endforeach()
  endif()
endforeach()

if(sluice_plugin_targets)
  # A no-op when `all` already built them.
  add_test(NAME plugins_built
    COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${sluice_plugin_targets})
  set_tests_properties(plugins_built PROPERTIES
    LABELS unit TIMEOUT 600 FIXTURES_SETUP sluice_plugins_built)
endif()

add_test(NAME plugin_exports
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-plugin-exports.sh ${CMAKE_BINARY_DIR})
set_tests_properties(plugin_exports PROPERTIES
  LABELS unit TIMEOUT 60 FIXTURES_REQUIRED sluice_plugins_built)

add_test(NAME plugin_readmes
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-plugin-readmes.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(plugin_readmes PROPERTIES LABELS unit TIMEOUT 60)

# A plugin acting in each phase, through the real gateway and mock provider.
# (tests/mock/mock.cmake is included after this file, so test for it by path)
if(TARGET sluice AND EXISTS ${CMAKE_SOURCE_DIR}/tests/mock/mock.cmake)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  add_test(NAME abi_phases
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_phases.py
            --build-dir ${CMAKE_BINARY_DIR})
  set_tests_properties(abi_phases PROPERTIES LABELS integration TIMEOUT 120)
  # Calls, timers, health_get, on_cleanup and the 1.0 plugin, through the
  # real gateway (reloads included, so it also runs under TSan).
  add_test(NAME abi_host_services
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_host_services.py
            --build-dir ${CMAKE_BINARY_DIR})
  set_tests_properties(abi_host_services PROPERTIES
    LABELS "integration;concurrency" TIMEOUT 300)
endif()

# A 1.1 plugin degrades on a host that pretends to be 1.0 (fake host).
if(TARGET sluice_testing)
  sluice_add_unit_test(test_host_degrade
    ${CMAKE_CURRENT_LIST_DIR}/test_host_degrade.c
    ${ABI_PLUGIN_SRC}/timer_probe.c
    LIBS sluice_testing PkgConfig::CMOCKA)
  # A plugin's upstream call answered by hand on the fake host.
  sluice_add_unit_test(test_host_fake_calls
    ${CMAKE_CURRENT_LIST_DIR}/test_host_fake_calls.c
    ${ABI_PLUGIN_SRC}/embed_probe.c
    LIBS sluice_testing PkgConfig::CMOCKA)
endif()

# `sluice batch` prices lines with the table plugins/cost_tracker ships: the
# same JSON file, compiled in as a byte array (the core reads the data file,
# it never includes the plugin's code).
set(BATCH_CLI_PRICES_JSON ${CMAKE_SOURCE_DIR}/plugins/cost_tracker/prices/openai.json)
set(BATCH_CLI_PRICES_C ${CMAKE_CURRENT_BINARY_DIR}/batch_cli_prices_data.c)
if(EXISTS ${BATCH_CLI_PRICES_JSON})
  file(READ ${BATCH_CLI_PRICES_JSON} bcp_hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bcp_bytes "${bcp_hex}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${BATCH_CLI_PRICES_JSON})
else()
  set(bcp_bytes "") # no table: --prices FILE is then needed for costs
endif()
file(CONFIGURE OUTPUT ${BATCH_CLI_PRICES_C} CONTENT
  "/* Generated from plugins/cost_tracker/prices/openai.json. */\nconst char batch_cli_default_prices[] = {${bcp_bytes} 0};\n")
target_sources(sluice_core PRIVATE ${BATCH_CLI_PRICES_C})

# The tokenizer needs PCRE2 (tiktoken's patterns). GLOBAL so test and fuzz
# targets elsewhere in the tree can link it too. SLUICE_TOKENIZER_SOURCES
# is the tokenizer alone (no other core file), for the fuzz target, tools
# and benchmarks; sluice_core compiles the whole folder.
if(NOT TARGET PkgConfig::PCRE2)
  pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET GLOBAL libpcre2-8)
endif()
set(tokens_dir ${CMAKE_SOURCE_DIR}/core/tokens)
set(SLUICE_TOKENIZER_SOURCES
  ${tokens_dir}/tokens.c ${tokens_dir}/encoding_names.c
  ${tokens_dir}/rank_table.c ${tokens_dir}/bpe_merge.c
  ${tokens_dir}/merge_queue.c ${tokens_dir}/pretok.c
  ${tokens_dir}/utf8_repair.c ${tokens_dir}/ranks.c
  CACHE INTERNAL "tokenizer sources")
# ranks.c embeds data/*.bin with .incbin: rebuild it when they change.
set_source_files_properties(${tokens_dir}/ranks.c PROPERTIES OBJECT_DEPENDS
  "${tokens_dir}/data/o200k_base.bin;${tokens_dir}/data/cl100k_base.bin")

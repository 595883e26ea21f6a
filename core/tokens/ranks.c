/* The rank tables, embedded read-only from data/NAME.bin (see
 * data/convert.py) by the assembler: no generated source, no load step.
 * SLUICE_SOURCE_DIR is the repository root (a compile definition). */
#ifndef SLUICE_SOURCE_DIR
#error "SLUICE_SOURCE_DIR must name the source tree"
#endif

#define TOK_BLOB(sym, file)                                                    \
    ".section .rodata\n.balign 16\n.globl " sym "\n.globl " sym "_end\n" sym   \
    ":\n.incbin \"" SLUICE_SOURCE_DIR "/core/tokens/data/" file "\"\n" sym     \
    "_end:\n.previous\n"

__asm__(TOK_BLOB("tok_o200k_blob", "o200k_base.bin"));
__asm__(TOK_BLOB("tok_cl100k_blob", "cl100k_base.bin"));

/* The rank tables, embedded read-only (data/NAME.bin, see data/convert.py). */
    .section .rodata
    .balign 16
    .globl tok_o200k_blob
    .globl tok_o200k_blob_end
tok_o200k_blob:
    .incbin "o200k_base.bin"
tok_o200k_blob_end:
    .balign 16
    .globl tok_cl100k_blob
    .globl tok_cl100k_blob_end
tok_cl100k_blob:
    .incbin "cl100k_base.bin"
tok_cl100k_blob_end:
    .section .note.GNU-stack,"",@progbits

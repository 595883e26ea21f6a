/* Checkpoints of `sluice batch`. Results are appended to OUT.partial as
 * they finish; OUT.checkpoint records how many bytes of it are complete,
 * with the input's hash and the totals so far. It is written to a
 * temporary file, fsync'd and renamed (after OUT.partial is fsync'd), so
 * after any interruption the pair is consistent: resuming truncates
 * OUT.partial to the recorded length and skips the lines found in it. */
#ifndef SLUICE_CLI_BATCH_CHECKPOINT_H
#define SLUICE_CLI_BATCH_CHECKPOINT_H

#include <stdint.h>
#include <stdio.h>

struct batch_ckpt {
    uint64_t input_hash;
    uint64_t partial_bytes;
    uint64_t done, failed;
    uint64_t prompt_tokens, completion_tokens;
    double spend_usd;
};

/* 0 read, 1 no checkpoint, -1 unreadable. */
int batch_ckpt_read(const char *path, struct batch_ckpt *c);
/* fsyncs `partial` first; 0 or -1. */
int batch_ckpt_write(const char *path, FILE *partial,
                     const struct batch_ckpt *c);

#endif

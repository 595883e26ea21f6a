/* `sluice batch`: runs an OpenAI batch JSONL against any OpenAI-compatible
 * endpoint with concurrency and RPM/TPM limits, a progress line, atomic
 * checkpoints and resume, or estimates its tokens and cost (--dry-run). */
#ifndef SLUICE_CLI_BATCH_CLIENT_H
#define SLUICE_CLI_BATCH_CLIENT_H

/* argv[0] is "batch". Returns the process exit code. */
int batch_client_main(int argc, char **argv);

#endif

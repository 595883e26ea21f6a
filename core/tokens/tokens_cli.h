/* `sluice tokens`: counts a file or stdin the way the gateway does. */
#ifndef SLUICE_TOKENS_CLI_H
#define SLUICE_TOKENS_CLI_H

/* argv[0] is "tokens". Returns the process exit code. */
int tokens_cli_main(int argc, char **argv);

#endif

/* Fake host, SDK 1.1 upstream calls and timers (testing_services.c): what
 * testing.c calls to put them into a fake host's table and to drop their
 * state with it. Not installed. */
#ifndef SLUICE_TESTING_SERVICES_H
#define SLUICE_TESTING_SERVICES_H

#include "sluice/host.h"

void sluice_testing_services_attach(struct sluice_host *h);
void sluice_testing_services_detach(const struct sluice_host *h);

#endif

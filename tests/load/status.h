/* status.h — lectern-load's friends'-status scenarios (see status.c).
 *
 * load.c hands every --scenario whose name starts with "status-" here,
 * whole: these scenarios have their own options and their own report.
 */
#ifndef LECTERN_LOAD_STATUS_H
#define LECTERN_LOAD_STATUS_H

#include <stdbool.h>
#include <stdio.h>

/* True when `scenario` is one of the status scenarios. */
bool status_is_scenario(const char *scenario);

/* Run the status scenario named by argv's --scenario with argv's options;
 * prints progress on stderr and one JSON document on stdout. Returns the
 * process exit code: 0 when the run was complete and correct, 1 when it
 * ran but something was missing or wrong, 2 for bad options. */
int status_main(int argc, char **argv);

/* The status scenarios' part of --help. */
void status_usage(FILE *f);

#endif

/* cli.h — the command line and configuration front end of every Lectern
 * program.
 *
 * A program describes itself in a cli_program: its name, the text of its
 * --help, its knob table (lib/cfg), the checks its configuration needs
 * beyond the table, and how it is created, run and destroyed. cli_main does
 * the rest, the same way for every program:
 *
 *   --help, --version, --print-config   print and exit 0
 *   --config FILE, --set KEY=VALUE ...  configuration, layered as cfg_load
 *                                       says: defaults, file, environment,
 *                                       each --set in order, then aliases
 *   --check-config                      load, check, print "configuration ok"
 *   a bad option or stray argument      usage on stderr, exit 2
 *   a bad configuration                 "NAME: configuration error: why",
 *                                       exit 2, before anything starts
 *
 * then starts the program: logs (lib/log, at the knob log.level), SIGPIPE
 * ignored, the process-wide library set-up, create, run, destroy. The exit
 * status is run's, or 1 when the program could not start.
 */
#ifndef LECTERN_CLI_H
#define LECTERN_CLI_H

#include "cfg.h"

#include <stddef.h>

/* An option that sets one knob (--port N for server.port): applied after
 * every --set, so it wins over them. */
typedef struct cli_alias {
    const char *name;            /* long option, "port"; NULL ends the list */
    char        short_name;      /* 'p' */
    const char *arg;             /* the argument's name in --help, "N" */
    const char *knob;            /* "server.port" */
    const char *help;            /* one line of --help */
} cli_alias;

typedef struct cli_program {
    const char *name;            /* "lectern-server": --version, errors, logs */
    const char *version;
    const char *about;           /* --help between "Usage: ..." and "Options:" */
    const char *config_file;     /* the shipped file --help points at */
    const char *set_example;     /* a --set example for --help, "stomp.max_frame=1m" */
    const char *epilog;          /* --help after the options */
    const cli_alias *aliases;    /* may be NULL */
    const cfg_knob *knobs;       /* the program's table; it has a log.level knob */
    const char *config_title;    /* the header of --print-config */
    size_t conf_size;            /* sizeof the program's config struct */

    /* What the table cannot check, on every start and --check-config.
     * Returns 0, or -1 with the reason in err. */
    int (*check)(const void *conf, char *err, size_t errlen);
    /* --check-config only (may be NULL): what otherwise only starting would
     * find (a key file, an address list). Returns 0 or -1 with err. */
    int (*check_start)(const void *conf, char *err, size_t errlen);

    /* Process-wide set-up of libraries, before any thread (may be NULL):
     * 0, or -1 with the reason in err; and its tear-down, after destroy. */
    int (*init)(char *err, size_t errlen);
    void (*end)(void);

    /* The program: conf is borrowed and outlives it. create returns NULL
     * with the reason in err; run returns the exit status. */
    void *(*create)(const void *conf, char *err, size_t errlen);
    int (*run)(void *app);
    void (*destroy)(void *app);
} cli_program;

/* Run program p with the command line argc/argv. conf is the program's
 * config struct (p->conf_size bytes, caller's storage; zeroed here and
 * freed with cfg_free before returning). Returns the exit status. */
int cli_main(const cli_program *p, void *conf, int argc, char **argv);

#endif

/* cli.c — the command-line front end shared by lectern-server and
 * lectern-storage (see cli.h).
 *
 * The option table is built from the fixed options every program has and
 * the program's aliases, so getopt_long sees one table and --help lists
 * the same options in the same words. --help and the usage printed after an
 * error come from one function. The configuration is loaded with cfg_load;
 * aliases are applied after it (they stand for a --set given last), then
 * the program's check runs. Nothing of the program starts before the whole
 * configuration has been accepted.
 *
 * Exit statuses: 0 for --help, --version, --print-config and a good
 * --check-config; 2 for a usage or configuration error; 1 when the program
 * cannot start (its reason logged as startup_failed); otherwise what the
 * program's run returns.
 */
#include "cli.h"

#include "log.h"
#include "mem.h"

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fixed options that have no short form get codes outside char range. */
enum { CLI_PRINT_CONFIG = 256, CLI_CHECK_CONFIG };

#define CLI_MAX_ALIASES 8

static void cli_usage(const cli_program *p, FILE *out)
{
    fprintf(out, "Usage: %s [options]\n\n%s\nOptions:\n", p->name, p->about);
    fprintf(out, "  -c, --config FILE    read knobs from FILE (see %s)\n", p->config_file);
    for (const cli_alias *a = p->aliases; a && a->name; a++) {
        char opt[32];
        snprintf(opt, sizeof opt, "--%s %s", a->name, a->arg);
        fprintf(out, "  -%c, %-17s%s\n", a->short_name, opt, a->help);
    }
    fprintf(out,
            "  -s, --set KEY=VALUE  override one knob, e.g. --set %s;\n"
            "                       may be repeated; applied after --config and the\n"
            "                       environment\n"
            "Every knob can also be set by an environment variable named after it:\n"
            "LECTERN_ and the knob upper-cased, '.' as '_' (redis.host ->\n"
            "LECTERN_REDIS_HOST); it overrides the file, --set overrides it.\n"
            "      --print-config   print every knob with its default and help, as a\n"
            "                       config file, and exit\n"
            "      --check-config   load the configuration, report any error, and exit\n"
            "  -V, --version        print the version and exit\n"
            "  -h, --help           print this help and exit\n"
            "\n%s", p->set_example, p->epilog);
}

/* Create, run and destroy the program, between the process-wide set-up and
 * its end. Returns the exit status. */
static int cli_start(const cli_program *p, const void *conf)
{
    char err[512];
    int rc = 1;

    const char *level = cfg_get_str(p->knobs, conf, "log.level");
    log_init(p->name, level ? log_level_parse(level) : LOG_LEVEL_INFO);
    signal(SIGPIPE, SIG_IGN);
    if (p->init && p->init(err, sizeof err) < 0) {
        log_error("startup_failed", "reason=\"%s\"", err);
        return 1;
    }
    void *app = p->create(conf, err, sizeof err);
    if (!app) {
        log_error("startup_failed", "reason=\"%s\"", err);
        goto out;
    }
    rc = p->run(app);
    p->destroy(app);
    log_info("exit", "status=%d", rc);
out:
    if (p->end)
        p->end();
    return rc;
}

int cli_main(const cli_program *p, void *conf, int argc, char **argv)
{
    struct option opts[6 + CLI_MAX_ALIASES + 1];
    char shorts[16 + 2 * CLI_MAX_ALIASES] = "c:s:Vh";
    const char *alias_value[CLI_MAX_ALIASES] = { NULL };
    const char **sets = xcalloc((size_t)argc + 1, sizeof *sets);
    const char *config_file = NULL;
    int nsets = 0, naliases = 0, check_only = 0, rc = 2, opt;
    char err[512] = "";
    bool bad = false;          /* err holds a configuration error */

    memset(conf, 0, p->conf_size);
    opts[0] = (struct option){ "config", required_argument, NULL, 'c' };
    opts[1] = (struct option){ "set", required_argument, NULL, 's' };
    opts[2] = (struct option){ "print-config", no_argument, NULL, CLI_PRINT_CONFIG };
    opts[3] = (struct option){ "check-config", no_argument, NULL, CLI_CHECK_CONFIG };
    opts[4] = (struct option){ "version", no_argument, NULL, 'V' };
    opts[5] = (struct option){ "help", no_argument, NULL, 'h' };
    for (const cli_alias *a = p->aliases; a && a->name && naliases < CLI_MAX_ALIASES; a++) {
        opts[6 + naliases] = (struct option){ a->name, required_argument, NULL, a->short_name };
        size_t n = strlen(shorts);
        shorts[n] = a->short_name;
        shorts[n + 1] = ':';
        shorts[n + 2] = '\0';
        naliases++;
    }
    opts[6 + naliases] = (struct option){ NULL, 0, NULL, 0 };

    while ((opt = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
        int i;
        switch (opt) {
        case 'c': config_file = optarg; continue;
        case 's': sets[nsets++] = optarg; continue;
        case CLI_CHECK_CONFIG: check_only = 1; continue;
        case CLI_PRINT_CONFIG:
            cfg_print(p->knobs, p->config_title, stdout);
            rc = 0;
            goto out;
        case 'V':
            printf("%s %s\n", p->name, p->version);
            rc = 0;
            goto out;
        case 'h':
            cli_usage(p, stdout);
            rc = 0;
            goto out;
        default:
            for (i = 0; i < naliases && p->aliases[i].short_name != opt; i++)
                ;
            if (i < naliases) {
                alias_value[i] = optarg;
                continue;
            }
            cli_usage(p, stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", p->name, argv[optind]);
        cli_usage(p, stderr);
        goto out;
    }

    bad = cfg_load(p->knobs, conf, config_file, sets, nsets, err, sizeof err) < 0;
    for (int i = 0; i < naliases && !bad; i++)
        bad = alias_value[i] && cfg_set_value(p->knobs, conf, p->aliases[i].knob, alias_value[i],
                                              err, sizeof err) < 0;
    bad = bad || (p->check && p->check(conf, err, sizeof err) < 0);
    bad = bad || (check_only && p->check_start && p->check_start(conf, err, sizeof err) < 0);
    if (bad)
        goto out;
    if (check_only) {
        printf("configuration ok\n");
        rc = 0;
    } else {
        rc = cli_start(p, conf);
    }

out:
    if (bad)
        fprintf(stderr, "%s: configuration error: %s\n", p->name, err);
    cfg_free(p->knobs, conf);
    free(sets);
    return rc;
}

/* main.c — lectern-storage's command line: what the program is, for the
 * front end that every Lectern program shares (lib/cli).
 *
 * Configuration is layered as in lectern-server: built-in defaults (the knob
 * table), then the file given with --config, then the environment
 * (LECTERN_SECTION_KEY variables), then each --set in order. Any
 * invalid value stops the program with "where: why" (exit 2) before
 * anything starts.
 */
#include "cli.h"
#include "config.h"
#include "mysqlconn.h"
#include "service.h"
#include "version.h"

static int main_check(const void *conf, char *err, size_t errlen)
{
    return storage_config_check(conf, err, errlen);
}

static void *main_create(const void *conf, char *err, size_t errlen)
{
    return service_create(conf, err, errlen);
}

static int main_run(void *app) { return service_run(app); }
static void main_destroy(void *app) { service_destroy(app); }

static const cli_program program = {
    .name = "lectern-storage",
    .version = LECTERN_VERSION,
    .about =
        "Lectern's storage worker: consumes the durable storage queue that\n"
        "lectern-server publishes every room message to, and writes the messages\n"
        "into MySQL/MariaDB in batches (idempotent: a message is stored once however\n"
        "often it is delivered), acknowledging each batch only after its COMMIT.\n"
        "Run any number of workers side by side. The schema (table messages) is\n"
        "created or migrated at start.\n",
    .config_file = "config/lectern-storage.conf",
    .set_example = "storage.batch_max=1000",
    .epilog =
        "HTTP (http.port, default 8390): GET /healthz, /readyz (200 when consuming\n"
        "and MySQL is connected, else 503 with a reason), /metrics (Prometheus).\n"
        "Signals: SIGTERM or SIGINT stop consuming, write and acknowledge the\n"
        "messages in hand, and exit 0 (within storage.shutdown_timeout_ms).\n"
        "Logs: one key=value line per event on stderr.\n",
    .knobs = storage_knobs,
    .config_title = storage_config_title,
    .conf_size = sizeof(storage_config),
    .check = main_check,
    .init = mysqlconn_library_init,
    .end = mysqlconn_library_end,
    .create = main_create,
    .run = main_run,
    .destroy = main_destroy,
};

int main(int argc, char **argv)
{
    static storage_config conf;
    return cli_main(&program, &conf, argc, argv);
}

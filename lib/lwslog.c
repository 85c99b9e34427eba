/* lwslog.c — the bridge from lws_set_log_level to lib/log (see lwslog.h).
 * lws lines end with a newline and may hold anything; they are trimmed and
 * quoted, errors logged as errors, everything else as warnings. */
#include "lwslog.h"

#include "log.h"

#include <libwebsockets.h>
#include <string.h>

static void lwslog_line(int level, const char *line)
{
    char q[512];
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_write(level == LLL_ERR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, "lws", "msg=%s",
              log_q(q, sizeof q, line, n));
}

void lwslog_install(int levels)
{
    lws_set_log_level(levels, lwslog_line);
}

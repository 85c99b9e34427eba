/* lwslog.h — libwebsockets' log lines as Lectern log lines.
 *
 * Both programs run libwebsockets; its own logging is routed here so that
 * every line on stderr has the same one-line key=value shape.
 */
#ifndef LECTERN_LWSLOG_H
#define LECTERN_LWSLOG_H

/* Route lws logging at `levels` (LLL_* bits) to log_write, as event "lws". */
void lwslog_install(int levels);

#endif

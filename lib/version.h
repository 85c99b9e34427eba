/* version.h — the Lectern release both programs report (--version, /healthz).
 * Identical to LECTERN_VERSION in server/server.h, which may include this
 * file instead (an identical redefinition is allowed in C). */
#ifndef LECTERN_VERSION
#define LECTERN_VERSION "0.1.0"
#endif

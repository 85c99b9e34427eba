/* log.h — one-line structured logs (logfmt) on stderr.
 *
 *   ts=2026-11-22T07:39:00.123Z level=info prog=lectern-server event=listening port=8300
 *
 * The event name is a fixed identifier; the rest of the line is key=value
 * pairs formatted by the caller. Values that may contain spaces, quotes or
 * control characters (anything a client sent) go through log_q(), which
 * quotes and escapes them, so a line can never be split or forged.
 */
#ifndef LECTERN_LOG_H
#define LECTERN_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Set the program name shown on every line and the minimum level written.
 * prog is borrowed and must outlive all logging. */
void log_init(const char *prog, int level);

/* "debug" | "info" | "warn" | "error" -> level, or -1. */
int log_level_parse(const char *name);

bool log_enabled(int level);

/* Write one line: `fmt` formats the key=value tail (may be NULL or ""). */
void log_write(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quote s[0..len) for a log value into out (always NUL-terminated, truncated
 * with "..." when it does not fit). Returns out. */
const char *log_q(char *out, size_t outlen, const char *s, size_t len);

#define log_debug(ev, ...) do { if (log_enabled(LOG_LEVEL_DEBUG)) log_write(LOG_LEVEL_DEBUG, ev, __VA_ARGS__); } while (0)
#define log_info(ev, ...)  log_write(LOG_LEVEL_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...)  log_write(LOG_LEVEL_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_write(LOG_LEVEL_ERROR, ev, __VA_ARGS__)

#endif

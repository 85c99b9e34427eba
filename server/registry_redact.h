/* registry_redact.h — redaction marks on the room logs in Redis.
 *
 * A redacted message of a room's log is marked in the hash P room:{R}:red
 * (message id -> the mark, JSON {"by": <who>, "at": <ms>}), which lives as
 * long as the log itself. Every read of the log (history, resume, the
 * relay's gap fills and catch-ups: log_range.lua) answers a marked entry as
 * its tombstone: the same id, seq, epoch, ts, origin, sender and sender
 * name; no content type; the header lines x-redacted-by and x-redacted-at
 * (redact_tombstone_headers); an empty body. Marking is atomic with the
 * check that the log holds the message and that nobody marked it before.
 */
#ifndef LECTERN_REGISTRY_REDACT_H
#define LECTERN_REGISTRY_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"
#include "registry.h"

typedef enum registry_redact_status {
    REGISTRY_REDACT_FAILED,     /* Redis did not answer */
    REGISTRY_REDACT_MARKED,     /* the log holds it; marked now (orig: the entry) */
    REGISTRY_REDACT_ALREADY,    /* marked before (mark: the recorded one) */
    REGISTRY_REDACT_ABSENT,     /* the log does not hold that id; nothing changed */
    REGISTRY_REDACT_EVENT       /* the id is a redaction event's: not redactable */
} registry_redact_status;

/* The outcome, lent for the call. */
typedef struct registry_redact_result {
    registry_redact_status status;
    const char *mark;           /* MARKED, ALREADY: the mark's JSON (NUL-terminated) */
    const envelope *orig;       /* MARKED: the message as the log holds it */
} registry_redact_result;

typedef void (*registry_redact_fn)(void *ctx, const registry_redact_result *res);

/* Mark message `id` of room's log with `mark` (a JSON object {"by","at"};
 * the log reads decode it) unless it is marked already or the log does not
 * hold it. room, id and mark are copied. fn runs once Redis answered.
 * Returns 0, or -1 when the registry is not up (fn is not called). */
int registry_redact_mark(registry *g, const char *room, const char *id, const char *mark,
                         registry_redact_fn fn, void *ctx);

/* Take back the mark of `id` if it is still exactly `mark` (a failed
 * redaction, to be repeated). Fire and forget: a Redis error is logged.
 * Returns 0, or -1 when the registry is not up (nothing sent). */
int registry_redact_unmark(registry *g, const char *room, const char *id, const char *mark);

#endif

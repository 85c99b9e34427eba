/* control.h — the body of a moderation frame: SEND to /control/<room>.
 *
 * An instructor moderates the rooms their token lists from the lecture
 * page itself, over the STOMP connection they already have:
 *
 *   SEND destination:/control/<room> content-type:application/json receipt:r7
 *   {"action": "redact", "id": "<message id>"}
 *   {"action": "mute",   "user": "<user id>", "duration_s": 600, "reason": "..."}
 *   {"action": "unmute", "user": "<user id>"}
 *   {"action": "kick",   "user": "<user id>", "reason": "..."}
 *
 * This module only reads such a body (pure: no I/O, nothing kept); the
 * session (session_control.c) checks who may send it and carries it out
 * through redact.h and moderation.h. docs/protocol.md, "Moderation".
 */
#ifndef LECTERN_CONTROL_H
#define LECTERN_CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum control_action {
    CONTROL_REDACT,
    CONTROL_MUTE,
    CONTROL_UNMUTE,
    CONTROL_KICK,
} control_action;

typedef struct control_cmd {
    control_action action;
    const char *id;            /* REDACT: the message id */
    const char *user;          /* the others: whom it is about */
    int64_t duration_ms;       /* MUTE: how long (0: until lifted) */
    const char *reason;        /* MUTE, KICK: optional ("" when absent) */
} control_cmd;

/* Limits of a body (the session passes its knobs). */
typedef struct control_limits {
    int64_t max_duration_s;    /* longest mute (> 0) */
    size_t max_reason;         /* longest reason, bytes */
} control_limits;

/* Read body[0..len) into *cmd. Returns the parsed JSON (the strings in
 * *cmd point into it: json_decref it when done), or NULL with a static
 * reason in *why: not a JSON object, an unknown action, a missing or
 * ill-formed member (message ids are <ms>-<n>; user ids as userid_valid;
 * duration_s a whole number 1..max_duration_s; reason a string of at most
 * max_reason bytes). Time linear in len. */
json_t *control_parse(const char *body, size_t len, const control_limits *lim,
                      control_cmd *cmd, const char **why);

/* "redact", "mute", "unmute" or "kick". */
const char *control_action_name(control_action a);

#endif

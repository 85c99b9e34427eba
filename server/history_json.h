/* history_json.h — a page of room messages as JSON, measured and written in place.
 *
 * GET /api/rooms/<room>/messages answers one JSON object (docs/protocol.md):
 *
 *   {"room":..,"messages":[{..},..],"more":..,"before":..,"after":..}
 *
 * Each message lists id, room, seq, sender, sender_name, content_type,
 * timestamp, then body (valid UTF-8, as it is) or body_base64 (anything
 * else), then sender_role and headers when the SEND had them, then, for a
 * redacted message's tombstone (redact.h), "redacted": {"by", "at"}. Text that is
 * not valid UTF-8 (sender, names, header names and values) has each byte
 * that does not start a valid sequence replaced by U+FFFD; a header name
 * that is not valid UTF-8 is left out, and of a repeated name the first
 * occurrence wins, as in STOMP. Strings are escaped as jansson's compact
 * dump escapes them, so the output is byte for byte what a jansson tree of
 * the same page would print.
 *
 * Every function takes `out`: NULL only measures (returns the exact byte
 * count), otherwise writes that many bytes there (no NUL). A caller
 * measures, allocates once and writes: no tree, no text, no copies. Pure:
 * no I/O; the only allocation is a message's header scratch, freed before
 * returning.
 */
#ifndef LECTERN_HISTORY_JSON_H
#define LECTERN_HISTORY_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"

/* One message object. m is borrowed; every string field may be NULL
 * (written as ""; content_type as null). */
size_t history_json_message(const envelope *m, char *out);

/* The page object for msgs[0..n) (oldest first). `room` names the room
 * when the page is empty; otherwise msgs[0].room does. */
size_t history_json_page(const char *room, const envelope *msgs, size_t n, bool more,
                         char *out);

/* {"error":<why>} (why: any bytes, NUL-terminated; NULL reads as ""). */
size_t history_json_error(const char *why, char *out);

#endif

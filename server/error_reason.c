/* error_reason.c — the message header of each ERROR reason (see
 * error_reason.h; the list there is the one source of both).
 */
#include "error_reason.h"

static const char *const error_reason_messages[] = {
#define ERROR_REASON_TEXT(name, text) text,
    ERROR_REASON_LIST(ERROR_REASON_TEXT)
#undef ERROR_REASON_TEXT
};

const char *error_reason_message(error_reason r)
{
    return (unsigned)r < ERROR_REASON_COUNT ? error_reason_messages[r] : "other";
}

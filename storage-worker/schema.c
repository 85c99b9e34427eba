/* schema.c — splitting a migration into statements.
 *
 * The migration files (storage-worker/schema/NNNN_name.sql, embedded by
 * scripts/embed-sql with their comment lines removed) hold one or more
 * statements, each ended by ';' at the end of a line. A ';' elsewhere (inside
 * a line, as in a string literal or a DEFAULT) does not end a statement, so
 * the splitter needs no SQL lexer. Blank statements (empty lines between
 * two ';') are skipped. The splitter only hands out views into the text:
 * the caller runs each with mysql_real_query(conn, stmt, len).
 */
#include "schema.h"

#include <stdbool.h>

static bool schema_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

size_t schema_next_statement(const char **text, const char **stmt)
{
    const char *p = *text;
    for (;;) {
        while (*p && schema_blank(*p))
            p++;
        if (!*p) {
            *text = p;
            return 0;
        }
        const char *start = p, *end = NULL;
        while (*p) {
            if (*p == ';') {
                const char *q = p + 1;
                while (*q == ' ' || *q == '\t' || *q == '\r')
                    q++;
                if (*q == '\n' || !*q) {
                    end = p;
                    p = q;
                    break;
                }
            }
            p++;
        }
        if (!end)
            end = p;            /* the last statement may omit its ';' */
        while (end > start && schema_blank(end[-1]))
            end--;
        if (end > start) {
            *text = p;
            *stmt = start;
            return (size_t)(end - start);
        }
        /* a lone ';': nothing to run, look further */
    }
}

/* budget.c — per-connection memory accounting (see budget.h).
 *
 * The budget only counts; the session decides what a refusal means (an
 * ERROR for memory the client asked for, the slow-consumer close for
 * output it does not read). What is charged is an estimate of heap bytes:
 * the structures and bytes a thing keeps, rounded as malloc rounds them
 * (budget_chunk), so that the sum tracks what the process really holds
 * rather than only the payload.
 *
 * Invariant: by[k] is the sum of the charges of kind k not yet released.
 */
#include "budget.h"

bool budget_charge(budget *b, budget_kind k, size_t n, size_t others, size_t limit)
{
    if (!budget_fits(b, n, others, limit))
        return false;
    b->by[k] += (uint32_t)n;
    return true;
}

void budget_force(budget *b, budget_kind k, size_t n)
{
    b->by[k] += (uint32_t)n;
}

void budget_release(budget *b, budget_kind k, size_t n)
{
    b->by[k] = n >= b->by[k] ? 0 : b->by[k] - (uint32_t)n;
}

/* n bytes as "812 B", "12.5 KiB", "3.0 MiB". */
static void budget_put_size(buf *out, size_t n)
{
    if (n < 1024)
        buf_printf(out, "%zu B", n);
    else if (n < 1024 * 1024)
        buf_printf(out, "%.1f KiB", (double)n / 1024);
    else
        buf_printf(out, "%.1f MiB", (double)n / (1024 * 1024));
}

void budget_describe(const budget *b, size_t input, size_t output, size_t need,
                     size_t limit, buf *out)
{
    static const char *const names[BUDGET_KINDS] = {
        [BUDGET_TXN] = "open transactions",
        [BUDGET_WAIT] = "operations and receipts waiting",
        [BUDGET_SUBS] = "subscriptions",
        [BUDGET_HELD] = "messages held for replaying subscriptions",
    };
    buf_append_str(out, "This connection would make the server hold more memory than "
                        "limits.conn_memory allows (");
    budget_put_size(out, limit);
    buf_append_str(out, "). It holds ");
    budget_put_size(out, budget_total(b) + input + output);
    buf_append_str(out, " (");
    for (int k = 0; k < BUDGET_KINDS; k++) {
        buf_printf(out, "%s ", names[k]);
        budget_put_size(out, b->by[k]);
        buf_append_str(out, ", ");
    }
    buf_append_str(out, "partial input ");
    budget_put_size(out, input);
    buf_append_str(out, ", output not yet read ");
    budget_put_size(out, output);
    buf_append_str(out, ") and needed ");
    budget_put_size(out, need);
    buf_append_str(out, " more. Commit or abort transactions, wait for receipts and read "
                        "what the server sends before sending more.");
}

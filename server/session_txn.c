/* session_txn.c — BEGIN, COMMIT, ABORT, and frames that name a transaction.
 *
 * Transactions (txn.c) buffer copies of their SENDs, published on COMMIT;
 * ACK and NACK change nothing (room messages are not redelivered), so in a
 * transaction they are checked and receipted but not kept.
 *
 * A buffered SEND is charged to the connection's budget what it will hold
 * in flight, so COMMIT only hands that on to its publish: a transaction
 * that was accepted always commits.
 */
#include "session_internal.h"
#include "session.h"

#include "room.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- frames naming a transaction ------------------------------------------ */

/* A frame naming a transaction: a SEND is buffered in it, an ACK or NACK
 * (which would change nothing on COMMIT) only checked. Returns true when
 * the frame was consumed (buffered, or rejected with an ERROR). */
bool session_buffer_in_txn(session *s, const stomp_frame *f)
{
    const stomp_str *tn = stomp_frame_header(f, "transaction");
    if (!tn)
        return false;
    txn *t = s->busy ? txn_find(&s->busy->txns, tn->p, tn->len) : NULL;
    if (!t) {
        session_error_with(s, f, ERROR_UNKNOWN_TRANSACTION,
                           "No transaction was begun with the name: ", tn);
        return true;
    }
    if (f->command == STOMP_CMD_SEND) {
        if (txn_bytes(t) + stomp_frame_footprint(f) > s->list->env->conf->max_transaction_bytes) {
            session_error(s, f, ERROR_TRANSACTION_TOO_LARGE,
                          "The transaction would exceed stomp.max_transaction_bytes.");
            return true;
        }
        size_t cost = session_send_cost(f);
        if (cost < txn_frame_cost(f))
            cost = txn_frame_cost(f);
        if (!session_fits(s, f, cost))
            return true;
        budget_force(&s->budget, BUDGET_TXN, cost);
        txn_add(t, f, cost);
    }
    session_receipt(s, f);
    return true;
}

/* --- transactions --------------------------------------------------------- */

void session_on_begin(session *s, const stomp_frame *f)
{
    const stomp_str *tn = session_require(s, f, "transaction");
    if (!tn)
        return;
    if (s->busy && txn_find(&s->busy->txns, tn->p, tn->len)) {
        session_error_with(s, f, ERROR_DUPLICATE_TRANSACTION,
                           "A transaction with this name is already open: ", tn);
        return;
    }
    if ((s->busy ? s->busy->txns.n : 0) >= (uint32_t)s->list->env->conf->max_transactions) {
        session_error(s, f, ERROR_TOO_MANY_TRANSACTIONS,
                      "This connection reached stomp.max_transactions.");
        return;
    }
    size_t cost = txn_open_cost(tn->len);
    if (!session_fits(s, f, cost))
        return;
    budget_force(&s->budget, BUDGET_TXN, cost);
    txn_begin(&session_busy_get(s)->txns, tn->p, tn->len, cost);
    session_receipt(s, f);
}

void session_on_commit_or_abort(session *s, const stomp_frame *f)
{
    const stomp_str *tn = session_require(s, f, "transaction");
    if (!tn)
        return;
    txn *t = s->busy ? txn_find(&s->busy->txns, tn->p, tn->len) : NULL;
    if (!t) {
        session_error_with(s, f, ERROR_UNKNOWN_TRANSACTION,
                           "No transaction was begun with the name: ", tn);
        return;
    }
    /* Each SEND was charged what it holds in flight: COMMIT hands that on
     * to its publish (so a transaction that was accepted always commits). */
    budget_release(&s->budget, BUDGET_TXN, txn_charged(t));
    if (f->command == STOMP_CMD_COMMIT) {
        for (size_t i = 0; i < txn_count(t); i++) {
            const stomp_frame *bf = txn_frame(t, i);
            stomp_str name;
            const stomp_str *dest = stomp_frame_header(bf, "destination");
            room_destination(dest, (size_t)s->list->env->conf->max_room_name, &name);
            if (!session_send_publish(s, bf, &name, true))
                break;
        }
    }
    txn_end(&s->busy->txns, t);
    session_receipt(s, f);
    session_busy_trim(s);
}

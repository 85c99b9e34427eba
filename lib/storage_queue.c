/* storage_queue.c — the storage queue's declaration (see storage_queue.h).
 *
 * One function, so that the servers, the workers and the test publisher
 * cannot drift apart: RabbitMQ refuses a redeclaration whose flags or
 * arguments differ from the queue's. The argument table lives on the stack
 * for the duration of the RPC only; rabbitmq-c encodes it before sending.
 */
#include "storage_queue.h"

#include <string.h>

amqp_queue_declare_ok_t *storage_queue_declare(amqp_connection_state_t conn, amqp_channel_t ch,
                                               const char *name, const char *type)
{
    amqp_table_entry_t e[1];
    amqp_table_t args = amqp_empty_table;
    if (strcmp(type, "classic") != 0) {
        /* Only a non-default type is named: RabbitMQ compares arguments on
         * redeclaration, and an absent x-queue-type means classic. */
        e[0].key = amqp_cstring_bytes("x-queue-type");
        e[0].value.kind = AMQP_FIELD_KIND_UTF8;
        e[0].value.value.bytes = amqp_cstring_bytes(type);
        args.num_entries = 1;
        args.entries = e;
    }
    /* passive 0, durable 1, exclusive 0, auto_delete 0 */
    return amqp_queue_declare(conn, ch, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
}

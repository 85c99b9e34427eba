/* storage_queue.h — the durable storage queue's AMQP declaration.
 *
 * Every lectern-server publishes each message's storage copy to one durable
 * queue, and every lectern-storage worker consumes it. Both programs (and
 * the storage tests' publisher) declare it on each connection, and RabbitMQ
 * compares a redeclaration with the queue it has argument by argument: any
 * difference (a flag, an argument present on one side only) is refused with
 * PRECONDITION_FAILED and closes the channel. So the declaration lives here
 * once: durable, not exclusive, not auto-delete, and x-queue-type only when
 * the type is not "classic" (an absent x-queue-type means classic, and a
 * queue declared without it must keep being declared without it). For the
 * same reason its two knobs, storage.queue and storage.queue_type, have
 * one name, default and set of choices, written here too; each program
 * points the rows at its own fields and says in the help what the queue is
 * to it.
 */
#ifndef LECTERN_STORAGE_QUEUE_H
#define LECTERN_STORAGE_QUEUE_H

#include <amqp.h>

#include "cfg.h"

/* Declare queue `name` of type `type` ("classic", "quorum", or another
 * x-queue-type) on channel ch, and wait for the broker's answer (rabbitmq-c
 * RPC). Returns what amqp_queue_declare returns: NULL when it failed, the
 * reason then in amqp_get_rpc_reply(conn). Strings are borrowed for the
 * call. */
amqp_queue_declare_ok_t *storage_queue_declare(amqp_connection_state_t conn, amqp_channel_t ch,
                                               const char *name, const char *type);

/* The knob rows: storage.queue (a string at queue_offset of the program's
 * config struct) and storage.queue_type ("classic" or "quorum", a string at
 * type_offset). */
#define STORAGE_QUEUE_KNOBS(queue_offset, type_offset, queue_help, type_help)                  \
    { "storage.queue", CFG_STR, (queue_offset), "lectern.storage", 0, 0, NULL, queue_help },   \
    { "storage.queue_type", CFG_STR, (type_offset), "classic", 0, 0, "classic|quorum",         \
      type_help }

#endif

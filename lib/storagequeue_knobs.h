/* storagequeue_knobs.h — the knob rows naming the storage queue, for both
 * programs.
 *
 * Servers publish every message to the storage queue and lectern-storage
 * workers consume it; both declare it, and RabbitMQ refuses a declaration
 * that differs from the first. So storage.queue and storage.queue_type have
 * one name, default and set of choices, written here; each program points
 * the rows at its own fields and says in the help what the queue is to it.
 */
#ifndef LECTERN_STORAGEQUEUE_KNOBS_H
#define LECTERN_STORAGEQUEUE_KNOBS_H

#include "cfg.h"

/* storage.queue (a string at queue_offset of the program's config struct)
 * and storage.queue_type ("classic" or "quorum", a string at type_offset). */
#define STORAGEQUEUE_KNOBS(queue_offset, type_offset, queue_help, type_help)                   \
    { "storage.queue", CFG_STR, (queue_offset), "lectern.storage", 0, 0, NULL, queue_help },   \
    { "storage.queue_type", CFG_STR, (type_offset), "classic", 0, 0, "classic|quorum",         \
      type_help }

#endif

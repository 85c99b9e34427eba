/* contacts.h — a user's contact list (interim: the token's claim only). */
#ifndef LECTERN_CONTACTS_H
#define LECTERN_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct contacts contacts;
typedef struct contacts_req contacts_req;

typedef void (*contacts_fn)(void *ctx, const char *const *users, size_t n, bool ok);

contacts *contacts_create(void);
void contacts_destroy(contacts *c);
contacts_req *contacts_get(contacts *c, const char *user, const char *const *claim, size_t nclaim,
                           contacts_fn fn, void *ctx);
void contacts_cancel(contacts_req *r);
void contacts_invalidated(contacts *c, const char *user);

#endif

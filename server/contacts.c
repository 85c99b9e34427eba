/* contacts.c — interim: a user's contacts are the token's claim. */
#include "contacts.h"

#include <stdlib.h>

struct contacts {
    int unused;
};

contacts *contacts_create(void)
{
    return calloc(1, sizeof(contacts));
}

void contacts_destroy(contacts *c)
{
    free(c);
}

contacts_req *contacts_get(contacts *c, const char *user, const char *const *claim, size_t nclaim,
                           contacts_fn fn, void *ctx)
{
    (void)c;
    (void)user;
    fn(ctx, claim, nclaim, true);
    return NULL;
}

void contacts_cancel(contacts_req *r)
{
    (void)r;
}

void contacts_invalidated(contacts *c, const char *user)
{
    (void)c;
    (void)user;
}

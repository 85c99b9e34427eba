/* test_msg.c — unit tests for the per-version MESSAGE blocks (server/msg.c).
 *
 * msg_for_version makes a 1.1 or 1.0 block from the 1.2 one the first time
 * it is asked, keeps it on the msg, shares the 1.2 block when the bytes
 * would be the same, and keeps a version's block alive for as long as
 * someone holds a reference to it (ASan checks the lifetimes and leaks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "msg.h"
#include "stomp.h"

static msg *message(const char *headers, const char *body, size_t body_len)
{
    buf b;
    buf_init(&b);
    buf_append_str(&b, headers);
    stomp_put_body(&b, body, body_len);
    msg *m = msg_create(MSG_MESSAGE, &b);
    msg_set_id(m, "1-0", 3);
    m->seq = 7;
    buf_deinit(&b);
    return m;
}

static void test_plain_message_is_shared(void **state)
{
    (void)state;
    msg *m = message("destination:/topic/a\nmessage-id:1-0\ncontent-length:2\n", "hi", 2);
    assert_ptr_equal(msg_for_version(m, STOMP_V12), m);
    assert_ptr_equal(msg_for_version(m, STOMP_V11), m);
    assert_ptr_equal(msg_for_version(m, STOMP_V10), m);
    assert_ptr_equal(msg_for_version(m, 0), m);
    msg_unref(m);
}

static void test_escaped_message_gets_blocks_per_version(void **state)
{
    (void)state;
    static const char body[] = "b\\r\0x";
    msg *m = message("destination:/topic/a\nx-cr:a\\rb\nx-lf:a\\nb\nx-colon:a\\cb\ncontent-length:5\n",
                     body, 5);
    msg *v11 = msg_for_version(m, STOMP_V11);
    msg *v10 = msg_for_version(m, STOMP_V10);
    assert_ptr_not_equal(v11, m);
    assert_ptr_not_equal(v10, m);
    assert_ptr_not_equal(v10, v11);
    /* Made once: the same block again. */
    assert_ptr_equal(msg_for_version(m, STOMP_V11), v11);
    assert_ptr_equal(msg_for_version(m, STOMP_V10), v10);
    assert_ptr_equal(msg_for_version(m, STOMP_V12), m);

    static const char want11[] = "destination:/topic/a\nx-lf:a\\nb\nx-colon:a\\cb\ncontent-length:5\n\nb\\r\0x";
    static const char want10[] = "destination:/topic/a\nx-colon:a:b\ncontent-length:5\n\nb\\r\0x";
    assert_int_equal(v11->len, sizeof want11);          /* with the frame's NUL */
    assert_memory_equal(v11->data, want11, sizeof want11);
    assert_int_equal(v10->len, sizeof want10);
    assert_memory_equal(v10->data, want10, sizeof want10);
    /* The metadata travels along. */
    assert_int_equal(v10->kind, MSG_MESSAGE);
    assert_int_equal(v10->id_len, 3);
    assert_memory_equal(v10->id, "1-0", 3);
    assert_int_equal(v10->seq, 7);

    /* A queue's reference keeps a version's block after the 1.2 one goes. */
    msg_ref(v10);
    msg_unref(m);
    assert_memory_equal(v10->data, want10, sizeof want10);
    msg_unref(v10);
}

static void test_frames_other_than_message_are_untouched(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    buf_append_str(&b, "ERROR\nmessage:a\\rb\n\n");
    msg *m = msg_create(MSG_FRAME, &b);
    assert_ptr_equal(msg_for_version(m, STOMP_V10), m);
    assert_ptr_equal(msg_for_version(msg_heartbeat(), STOMP_V11), msg_heartbeat());
    msg_unref(m);
    buf_deinit(&b);
}

static void test_binary_flag_follows_the_bytes(void **state)
{
    (void)state;
    /* The only invalid UTF-8 is in a header 1.0 cannot carry. */
    msg *m = message("destination:/topic/a\nx:\xff\\nq\ncontent-length:0\n", "", 0);
    assert_true(m->binary);
    assert_true(msg_for_version(m, STOMP_V11)->binary);
    assert_false(msg_for_version(m, STOMP_V10)->binary);
    msg_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_message_is_shared),
        cmocka_unit_test(test_escaped_message_gets_blocks_per_version),
        cmocka_unit_test(test_frames_other_than_message_are_untouched),
        cmocka_unit_test(test_binary_flag_follows_the_bytes),
    };
    return cmocka_run_group_tests_name("msg versions", tests, NULL, NULL);
}

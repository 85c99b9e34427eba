/* clock.h — the two clocks a program needs, in integer units.
 *
 * Monotonic time measures durations and deadlines (it never jumps);
 * wall-clock time is only for comparing with timestamps made elsewhere (a
 * message's ts_ms). Both read clock_gettime(2), which is thread-safe.
 */
#ifndef LECTERN_CLOCK_H
#define LECTERN_CLOCK_H

#include <stdint.h>

/* Monotonic time in milliseconds (arbitrary origin). */
uint64_t clock_ms(void);

/* Monotonic time in microseconds (arbitrary origin). */
uint64_t clock_us(void);

/* Wall-clock time: milliseconds since the Unix epoch. */
uint64_t clock_wall_ms(void);
/* Wall-clock time in microseconds since the epoch. */
uint64_t clock_wall_us(void);

#endif

/*
 * tm_id.h - event ids: ULIDs (26 characters of Crockford base32: 48 bits of millisecond
 * time, then 80 random bits). They sort by creation time as plain strings, and ids made
 * in the same millisecond by one thread increase monotonically, so they are unique per
 * thread and, with 80 random bits seeded from getrandom(2), across hosts.
 */
#ifndef TM_ID_H
#define TM_ID_H

#include <stddef.h>
#include <stdint.h>

#define TM_ULID_LEN 26

/* Writes a new ULID and a NUL into out (at least TM_ULID_LEN + 1 bytes). Thread-safe. */
void tm_id_new(char *out);

/* Same, for a given time in ms (tests and replays). */
void tm_id_new_at(int64_t ms, char *out);

/*
 * A ULID with time ms whose 80-bit part is the first 10 bytes of bits: the same inputs
 * give the same id (ids derived from where an event was read, so a re-read is recognised).
 */
void tm_id_from(int64_t ms, const uint8_t bits[10], char *out);

/* Returns the millisecond time encoded in a ULID, or -1 if s is not one. */
int64_t tm_id_time(const char *s);

#endif

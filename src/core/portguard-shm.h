#ifndef PORTGUARD_SHM_H
#define PORTGUARD_SHM_H

/* The shared state table: a fixed-capacity, file-backed shared memory
   mapping of struct portguard_rl_entry keyed by struct portguard_rl_key,
   used by every login process at once. Pure C (POSIX), no Dovecot headers.

   - Layout: a header (magic, version, sizes, a random hash secret, a
     header checksum, lock stripes) and set-associative buckets of
     PORTGUARD_SHM_WAYS (16) slots of 100 bytes.
   - Two-choice hashing: every key has two candidate buckets, chosen by
     two independent keyed hashes (SipHash-2-4 with the file's secret and
     two different tweaks), so attacker-chosen addresses cannot target a
     bucket. A key lives in at most one of them, never both: lookups and
     updates look in both; a new key goes into the less loaded one.
   - Concurrency: robust process-shared mutexes, one per stripe of buckets.
     An operation on a key holds the stripes of both its buckets, taken in
     a fixed order (lower stripe index first; once if they are the same),
     so processes cannot deadlock. A process killed while holding a lock
     never wedges the others: the next locker gets EOWNERDEAD, marks the
     mutex consistent and carries on.
   - Both buckets full: of their 2 * PORTGUARD_SHM_WAYS entries, the
     stalest that is not banned is evicted (oldest last_seen); if all are
     banned, the one whose ban ends first.
   - Corrupt or incompatible file (bad magic/version/sizes/checksum, wrong
     file size, a lock stripe that is damaged or held by a process that
     does not exist): portguard_shm_open() rebuilds it (a fresh file renamed
     over the old one, so processes still using the old mapping are not
     disturbed) and reports why in *warning_r. Files of the older layout
     (older layout versions) are rebuilt this way.
   - Memory: size/100 slots (less the header, rounded down to whole
     buckets of 16). Requirement: 1,000,000 distinct keys fit in 128 MiB
     without evicting any. 128 MiB holds about 1,342,000 slots, so that
     is a 75% load; with one bucket per key, chance clusters of keys overflow
     some buckets long before the table is full (at 1M keys in 8-way
     buckets of 128-byte slots about 12% were evicted), while choosing
     the less loaded of two 16-way buckets keeps the buckets even enough
     that none overflows at that load (measured: the first eviction
     comes well above 1.1M keys). Slots are 100 bytes by holding at most
     16 failure times (PORTGUARD_RL_MAX_LIMIT). */

#include <stdbool.h>
#include <stdint.h>
#include "portguard-ratelimit.h"

#define PORTGUARD_SHM_WAYS 16
#define PORTGUARD_SHM_MIN_SIZE (64 * 1024)
/* Longest wait for a stripe lock. Locks are held for microseconds; one
   held far longer belongs to a stopped process, or was left locked in a
   file copied or written back while in use (its owner is gone without the
   kernel ever marking the lock abandoned). The operation then fails
   (portguard fails open or closed as configured) instead of hanging the
   login. */
#define PORTGUARD_SHM_LOCK_TIMEOUT_MSECS 1000

struct portguard_shm;

/* Open (creating if needed) the table file at path with a total size of
   size bytes (>= PORTGUARD_SHM_MIN_SIZE), map it shared read-write.
   An existing valid file with another size is rebuilt with the new size.
   mode is the file mode for a new file. Returns 0 (with *warning_r set to
   a reason if the file was rebuilt, else NULL), or -1 with *error_r. */
int portguard_shm_open(const char *path, uint64_t size, unsigned int mode,
		       struct portguard_shm **shm_r, const char **warning_r,
		       const char **error_r);
void portguard_shm_close(struct portguard_shm **shm);

/* Called with the entry locked. created: the slot was empty (entry is
   zeroed). Return false to remove the entry (or not create it). */
typedef bool portguard_shm_update_func_t(struct portguard_rl_entry *entry,
					 bool created, void *context);

/* Look up key (in both its buckets) and let func update it under the
   lock; if the key is absent and create is true, a slot is found
   (evicting, see above) and func is called with created=true;
   entry->last_seen is set to now afterwards.
   Returns 1 if func was called, 0 if the key is absent and create is
   false, -1 with *error_r if the table is unusable (e.g. the file shrank
   underneath: no access is attempted then). */
int portguard_shm_update(struct portguard_shm *shm,
			 const struct portguard_rl_key *key, uint32_t now,
			 bool create, portguard_shm_update_func_t *func,
			 void *context, const char **error_r);

/* Copy key's entry out (under the lock). 1 found, 0 absent, -1 error. */
int portguard_shm_lookup(struct portguard_shm *shm,
			 const struct portguard_rl_key *key,
			 struct portguard_rl_entry *entry_r,
			 const char **error_r);

/* Call func for a copy of every used entry (one stripe locked at a time).
   Stops early if func returns false. -1 with *error_r on error. */
typedef bool portguard_shm_iter_func_t(const struct portguard_rl_key *key,
				       const struct portguard_rl_entry *entry,
				       void *context);
int portguard_shm_iterate(struct portguard_shm *shm,
			  portguard_shm_iter_func_t *func, void *context,
			  const char **error_r);

/* Remove every entry. */
int portguard_shm_flush(struct portguard_shm *shm, const char **error_r);

/* Capacity (slots) and used slots (a scan; for tests, doveadm, bench). */
unsigned int portguard_shm_capacity(const struct portguard_shm *shm);
unsigned int portguard_shm_count(struct portguard_shm *shm);

#endif

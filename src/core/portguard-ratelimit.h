#ifndef PORTGUARD_RATELIMIT_H
#define PORTGUARD_RATELIMIT_H

/* Failed-AUTH counting, bans and ban back-off for one key. Pure C, no
   Dovecot headers; time is always a parameter (Unix seconds).

   Semantics (sliding window): a key is banned when fail_limit failures
   fall within the last fail_window seconds. A ban lasts
   ban_duration << (ban_level - 1), capped at ban_duration_max, where
   ban_level counts this key's bans (1 for the first). The ban history
   decays: once ban_duration_max seconds have passed since the end of the
   last ban without a new ban, the next ban is again a first ban.
   A successful AUTH forgets the failures, not the ban history. */

#include <stdbool.h>
#include <stdint.h>
#include "portguard-cidr.h"

/* Most failures a window can hold: fail_limit is 1..this. Kept small so
   that a key and its entry fit into one 112-byte slot of the shared
   state table (portguard-shm.h): 16 gives an 80-byte entry. */
#define PORTGUARD_RL_MAX_LIMIT 16

struct portguard_rl_config {
	unsigned int fail_limit; /* 1..PORTGUARD_RL_MAX_LIMIT */
	unsigned int fail_window; /* secs, > 0 */
	unsigned int ban_duration; /* secs, > 0 */
	unsigned int ban_duration_max; /* secs, >= ban_duration */
};

/* The client's key: its address masked to a prefix. */
struct portguard_rl_key {
	struct portguard_addr addr; /* host bits cleared */
	uint8_t prefix;
};

/* Per-key state; fixed size, no pointers (it lives in shared memory). */
struct portguard_rl_entry {
	uint32_t ban_until; /* 0 or end of the current/last ban */
	uint32_t last_ban_start; /* 0 = never banned */
	uint32_t last_seen; /* last update, for eviction */
	uint8_t ban_level; /* bans so far (decayed) */
	uint8_t fail_count; /* valid entries in fail_times */
	uint8_t fail_head; /* ring index of the oldest failure */
	uint8_t flags; /* PORTGUARD_RL_FLAG_* */
	uint32_t fail_times[PORTGUARD_RL_MAX_LIMIT];
};

/* set on entries banned by an administrator (doveadm) */
#define PORTGUARD_RL_FLAG_MANUAL 0x01

enum portguard_rl_verdict {
	/* the failure was counted, no ban */
	PORTGUARD_RL_COUNTED = 0,
	/* this failure reached the limit: the key is banned from now */
	PORTGUARD_RL_BANNED,
};

/* Validate a configuration; -1 with *error_r naming the setting
   ("portguard_auth_fail_limit: must be 1..16"). */
int portguard_rl_config_check(const struct portguard_rl_config *config,
			      const char **error_r);

/* Build the key of an address: IPv4 masked to ipv4_prefix (0..32), IPv6
   to ipv6_prefix (0..128). v4-mapped IPv6 is IPv4 (see portguard-cidr.h). */
void portguard_rl_key_make(struct portguard_rl_key *key_r,
			   const struct portguard_addr *addr,
			   unsigned int ipv4_prefix, unsigned int ipv6_prefix);
/* "192.0.2.7" for a host key, "2001:db8:1:2::/64" otherwise. size >= 64. */
const char *portguard_rl_key_to_str(const struct portguard_rl_key *key,
				    char *buf, unsigned int size);
/* Parse "ip" or "ip/prefix" into a key (host bits cleared); a bare ip
   gets the default prefixes. -1 with *error_r on bad input. */
int portguard_rl_key_parse(const char *str, unsigned int ipv4_prefix,
			   unsigned int ipv6_prefix,
			   struct portguard_rl_key *key_r, const char **error_r);
bool portguard_rl_key_equals(const struct portguard_rl_key *a,
			     const struct portguard_rl_key *b);

/* True if entry is banned at now; *remaining_r gets the seconds left. */
bool portguard_rl_is_banned(const struct portguard_rl_entry *entry,
			    uint32_t now, unsigned int *remaining_r);

/* Count one failure at now. When it reaches the limit the key is banned:
   returns PORTGUARD_RL_BANNED and sets *ban_secs_r and the entry's
   ban_level. A failure while already banned is counted but never extends
   the ban. */
enum portguard_rl_verdict
portguard_rl_fail(struct portguard_rl_entry *entry,
		  const struct portguard_rl_config *config, uint32_t now,
		  unsigned int *ban_secs_r);

/* Count one failure at now in the entry's ring (older ones outside the
   window or beyond the limit dropped), without any ban; returns the
   failures now within the window. */
unsigned int portguard_rl_count_failure(struct portguard_rl_entry *entry,
					const struct portguard_rl_config *config,
					uint32_t now);

/* Number of failures within the window ending at now. */
unsigned int portguard_rl_failures(const struct portguard_rl_entry *entry,
				   const struct portguard_rl_config *config,
				   uint32_t now);

/* A successful AUTH: forget the failures, keep the ban history. */
void portguard_rl_success(struct portguard_rl_entry *entry, uint32_t now);

/* Administrative ban for secs (0 = as the next automatic ban would be);
   sets PORTGUARD_RL_FLAG_MANUAL. Returns the ban length used. */
unsigned int portguard_rl_ban(struct portguard_rl_entry *entry,
			      const struct portguard_rl_config *config,
			      uint32_t now, unsigned int secs);

/* Lift a ban now and forget the failures (the ban history stays). */
void portguard_rl_unban(struct portguard_rl_entry *entry, uint32_t now);

/* True if the entry holds nothing worth keeping at now: no ban in force,
   no failure within the window, and the ban history has decayed. */
bool portguard_rl_is_idle(const struct portguard_rl_entry *entry,
			  const struct portguard_rl_config *config,
			  uint32_t now);

/* ---- counting an AUTH in advance ----
   To keep parallel connections from getting more password checks than the
   limit, an AUTH is counted as a failure when it starts (so the limit is
   reached, and later AUTHs refused, before their passwords are checked)
   and given back when it turns out not to be a failure. */

/* The ban fields of an entry, to undo a ban an attempt started. */
struct portguard_rl_snapshot {
	uint32_t ban_until, last_ban_start;
	uint8_t ban_level, flags;
};

void portguard_rl_snapshot_take(const struct portguard_rl_entry *entry,
				struct portguard_rl_snapshot *snapshot_r);
/* Undo the ban started at started (by an attempt counted then): if the
   entry's ban still is that one, restore the snapshot taken before it. */
void portguard_rl_undo_ban(struct portguard_rl_entry *entry,
			   const struct portguard_rl_snapshot *snapshot,
			   uint32_t started);
/* Give back one failure counted at when (the newest with that time);
   nothing if there is none (e.g. a ban used the failures up). */
void portguard_rl_refund(struct portguard_rl_entry *entry, uint32_t when);

/* ---- for counters kept elsewhere (the dict backend) ----
   There the failures are per-window counters (atomic increments in Redis)
   and only the ban history is a record. */

/* Start an automatic ban at now, exactly like the one portguard_rl_fail()
   starts when the limit is reached (level from the decayed history,
   doubling, cap). Returns the ban length. */
unsigned int portguard_rl_auto_ban(struct portguard_rl_entry *entry,
				   const struct portguard_rl_config *config,
				   uint32_t now);

/* Failures within the sliding window ending at now, estimated from the
   counter of the current fixed window (now / window) and the previous
   one: cur + prev * (part of the previous window still inside the sliding
   window), rounded up (never fewer than the failures of the last window
   length). Exact when all failures are in the current window. */
unsigned int portguard_rl_window_estimate(unsigned int cur, unsigned int prev,
					  uint32_t now, unsigned int window);

/* The ban history of entry (ban_until, last_ban_start, ban_level, flags)
   as text: "v1 <ban_until> <last_ban_start> <ban_level> <flags>". */
const char *portguard_rl_history_to_str(const struct portguard_rl_entry *entry,
					char *buf, unsigned int size);
/* Parse that text into a zeroed *entry_r (no failures). -1 if malformed. */
int portguard_rl_history_parse(const char *str,
			       struct portguard_rl_entry *entry_r);

#endif

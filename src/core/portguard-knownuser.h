#ifndef PORTGUARD_KNOWNUSER_H
#define PORTGUARD_KNOWNUSER_H

/* Lockout-trap mitigation: known users. Pure C, time is a parameter.

   A user who authenticated successfully from a key (address/prefix) is
   "known" there for period seconds after that success. Its failed AUTHs
   from that key count against its own limit (fail_limit within the key's
   fail_window) instead of against the key, so that a phone retrying a
   stale password, or one user among many behind a shared NAT address,
   does not ban everyone behind that address. Past its own limit, its
   failures count against the key as usual: an attacker who shares the
   address and knows such a user name gets fail_limit more guesses per
   window, no more.

   A known user is a portguard_rl_entry stored under a pseudo-key made from
   the key and the user name by a keyed hash: the name itself is never
   stored. In such an entry last_ban_start holds the time of the last
   successful AUTH and the failure ring the user's own failures; it is
   never banned. */

#include <stddef.h>
#include "portguard-ratelimit.h"

/* the address family of pseudo-keys (never 4 or 6) */
#define PORTGUARD_RL_FAMILY_KNOWN 0x4b

struct portguard_known_config {
	/* secs a success keeps the user known; 0 = mitigation off */
	unsigned int period;
	/* the known user's own limit, 1..PORTGUARD_RL_MAX_LIMIT */
	unsigned int fail_limit;
	/* secs, the key's window */
	unsigned int fail_window;
};

enum portguard_known_verdict {
	/* not known from this key: the failure counts against the key */
	PORTGUARD_KNOWN_NO = 0,
	/* counted against the user's own limit, not against the key */
	PORTGUARD_KNOWN_ABSORBED,
	/* known, but past its own limit: counts against the key */
	PORTGUARD_KNOWN_OVER_LIMIT,
};

/* Validate; -1 with *error_r naming the setting. */
int portguard_known_config_check(const struct portguard_known_config *config,
				 const char **error_r);

/* The pseudo-key of user (user_len bytes, not necessarily
   NUL-terminated) at key: family PORTGUARD_RL_FAMILY_KNOWN, 16 bytes of
   keyed hash over the key and the name. */
void portguard_known_key_make(struct portguard_rl_key *known_r,
			      const struct portguard_rl_key *key,
			      const char *user, size_t user_len);
/* True if key is such a pseudo-key (not an address). */
bool portguard_known_key_is(const struct portguard_rl_key *key);

/* A successful AUTH of the user at now: known from now on; its own
   failures are forgotten. */
void portguard_known_success(struct portguard_rl_entry *entry, uint32_t now);

/* True if the entry's user is known at now. */
bool portguard_known_is_known(const struct portguard_rl_entry *entry,
			      const struct portguard_known_config *config,
			      uint32_t now);

/* A failed AUTH of the user at now. Counted in the entry only when the
   user is known and still within its limit (ABSORBED). */
enum portguard_known_verdict
portguard_known_fail(struct portguard_rl_entry *entry,
		     const struct portguard_known_config *config,
		     uint32_t now);

/* True if the entry holds nothing worth keeping at now (no longer
   known). */
bool portguard_known_is_idle(const struct portguard_rl_entry *entry,
			     const struct portguard_known_config *config,
			     uint32_t now);

/* The hex text of a pseudo-key (32 hex digits), for dict keys; size >= 33. */
const char *portguard_known_key_to_hex(const struct portguard_rl_key *known,
				       char *buf, unsigned int size);

#endif

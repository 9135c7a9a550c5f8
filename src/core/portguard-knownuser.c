/* Known users (see portguard-knownuser.h). Pure C. */

#include "portguard-siphash.h"
#include "portguard-knownuser.h"

#include <string.h>

/* Fixed keys of the pseudo-key hash. The pseudo-key hides the name from
   whoever reads the state; the tables themselves place keys with their
   own secret (portguard-shm.c), so these need not be secret. */
static const uint8_t portguard_known_hash_key[2][PORTGUARD_SIPHASH_KEY_SIZE] = {
	{ 'p', 'o', 'r', 't', 'g', 'u', 'a', 'r',
	  'd', '-', 'k', 'n', 'o', 'w', 'n', '1' },
	{ 'p', 'o', 'r', 't', 'g', 'u', 'a', 'r',
	  'd', '-', 'k', 'n', 'o', 'w', 'n', '2' },
};

/* Longest user name hashed; longer names are cut (Dovecot's own login
   limit is far below this). */
#define PORTGUARD_KNOWN_USER_MAX 1024

int portguard_known_config_check(const struct portguard_known_config *config,
				 const char **error_r)
{
	if (config->period == 0)
		return 0;
	if (config->fail_limit < 1 ||
	    config->fail_limit > PORTGUARD_RL_MAX_LIMIT) {
		*error_r = "portguard_known_user_fail_limit: must be 1..16";
		return -1;
	}
	return 0;
}

void portguard_known_key_make(struct portguard_rl_key *known_r,
			      const struct portguard_rl_key *key,
			      const char *user, size_t user_len)
{
	uint8_t data[2 + sizeof(key->addr.bytes) + PORTGUARD_KNOWN_USER_MAX];
	uint64_t h;
	size_t len;
	unsigned int i, j;

	if (user_len > PORTGUARD_KNOWN_USER_MAX)
		user_len = PORTGUARD_KNOWN_USER_MAX;
	data[0] = key->addr.family;
	data[1] = key->prefix;
	memcpy(data + 2, key->addr.bytes, sizeof(key->addr.bytes));
	memcpy(data + 2 + sizeof(key->addr.bytes), user, user_len);
	len = 2 + sizeof(key->addr.bytes) + user_len;

	memset(known_r, 0, sizeof(*known_r));
	known_r->addr.family = PORTGUARD_RL_FAMILY_KNOWN;
	for (i = 0; i < 2; i++) {
		h = portguard_siphash24(portguard_known_hash_key[i], data, len);
		for (j = 0; j < 8; j++)
			known_r->addr.bytes[i * 8 + j] =
				(uint8_t)(h >> (8 * j));
	}
}

bool portguard_known_key_is(const struct portguard_rl_key *key)
{
	return key->addr.family == PORTGUARD_RL_FAMILY_KNOWN;
}

static void
portguard_known_rl_config(const struct portguard_known_config *config,
			  struct portguard_rl_config *rl_r)
{
	memset(rl_r, 0, sizeof(*rl_r));
	rl_r->fail_limit = config->fail_limit;
	rl_r->fail_window = config->fail_window;
	rl_r->ban_duration = 1;
	rl_r->ban_duration_max = 1;
}

void portguard_known_success(struct portguard_rl_entry *entry, uint32_t now)
{
	entry->ban_until = 0;
	entry->ban_level = 0;
	entry->flags = 0;
	entry->last_ban_start = now;
	portguard_rl_success(entry, now);
}

bool portguard_known_is_known(const struct portguard_rl_entry *entry,
			      const struct portguard_known_config *config,
			      uint32_t now)
{
	uint32_t success = entry->last_ban_start;

	if (config->period == 0 || success == 0)
		return false;
	/* a success "in the future" (the clock went back) is recent */
	return now < success || now - success < config->period;
}

enum portguard_known_verdict
portguard_known_fail(struct portguard_rl_entry *entry,
		     const struct portguard_known_config *config,
		     uint32_t now)
{
	struct portguard_rl_config rl;

	if (!portguard_known_is_known(entry, config, now))
		return PORTGUARD_KNOWN_NO;
	portguard_known_rl_config(config, &rl);
	if (portguard_rl_failures(entry, &rl, now) >= config->fail_limit)
		return PORTGUARD_KNOWN_OVER_LIMIT;
	portguard_rl_count_failure(entry, &rl, now);
	return PORTGUARD_KNOWN_ABSORBED;
}

bool portguard_known_is_idle(const struct portguard_rl_entry *entry,
			     const struct portguard_known_config *config,
			     uint32_t now)
{
	return !portguard_known_is_known(entry, config, now);
}

const char *portguard_known_key_to_hex(const struct portguard_rl_key *known,
				       char *buf, unsigned int size)
{
	static const char hex[] = "0123456789abcdef";
	unsigned int i;

	if (size < 2 * sizeof(known->addr.bytes) + 1) {
		if (size > 0)
			buf[0] = '\0';
		return buf;
	}
	for (i = 0; i < sizeof(known->addr.bytes); i++) {
		buf[2 * i] = hex[known->addr.bytes[i] >> 4];
		buf[2 * i + 1] = hex[known->addr.bytes[i] & 0xf];
	}
	buf[2 * sizeof(known->addr.bytes)] = '\0';
	return buf;
}

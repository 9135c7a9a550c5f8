/* Failed-AUTH counting, bans and ban back-off. Pure C, no Dovecot headers.

   The failure ring: fail_times is always indexed modulo
   PORTGUARD_RL_MAX_LIMIT (not fail_limit), so entries kept in shared
   memory stay valid when fail_limit is changed by a reload; at most
   fail_limit of the newest failures are kept. All readers tolerate an
   entry with out-of-range counters (e.g. one a killed process left
   half-written) by clamping them. */

#include "portguard-ratelimit.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Longest key text we parse: an IPv6 address, '/', three digits. */
#define PORTGUARD_RL_KEY_TEXT_MAX 64
#define PORTGUARD_RL_ERR_TOKEN_MAX 80

static char portguard_rl_errbuf[160];

int portguard_rl_config_check(const struct portguard_rl_config *config,
			      const char **error_r)
{
	if (config->fail_limit < 1 ||
	    config->fail_limit > PORTGUARD_RL_MAX_LIMIT) {
		(void)snprintf(portguard_rl_errbuf, sizeof(portguard_rl_errbuf),
			       "portguard_auth_fail_limit: must be 1..%d",
			       PORTGUARD_RL_MAX_LIMIT);
		*error_r = portguard_rl_errbuf;
		return -1;
	}
	if (config->fail_window == 0) {
		*error_r = "portguard_auth_fail_window: must be > 0";
		return -1;
	}
	if (config->ban_duration == 0) {
		*error_r = "portguard_ban_duration: must be > 0";
		return -1;
	}
	if (config->ban_duration_max < config->ban_duration) {
		(void)snprintf(portguard_rl_errbuf, sizeof(portguard_rl_errbuf),
			       "portguard_ban_duration_max: must be >= "
			       "portguard_ban_duration (%u)",
			       config->ban_duration);
		*error_r = portguard_rl_errbuf;
		return -1;
	}
	return 0;
}

/* ---- keys ---- */

static void portguard_rl_key_clear_host_bits(struct portguard_rl_key *key)
{
	unsigned int bits = key->addr.family == 4 ? 32 : 128;
	unsigned int i;

	for (i = key->prefix; i < bits; i++)
		key->addr.bytes[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
}

void portguard_rl_key_make(struct portguard_rl_key *key_r,
			   const struct portguard_addr *addr,
			   unsigned int ipv4_prefix, unsigned int ipv6_prefix)
{
	memset(key_r, 0, sizeof(*key_r));
	/* normalizes v4-mapped IPv6 and zeroes the unused bytes */
	portguard_addr_from_bytes(&key_r->addr, addr->family, addr->bytes);
	if (key_r->addr.family == 4)
		key_r->prefix = (uint8_t)(ipv4_prefix > 32 ? 32 : ipv4_prefix);
	else if (key_r->addr.family == 6) {
		key_r->prefix = (uint8_t)(ipv6_prefix > 128 ?
					  128 : ipv6_prefix);
	} else
		return;
	portguard_rl_key_clear_host_bits(key_r);
}

const char *portguard_rl_key_to_str(const struct portguard_rl_key *key,
				    char *buf, unsigned int size)
{
	char addr[PORTGUARD_RL_KEY_TEXT_MAX];
	unsigned int full = key->addr.family == 4 ? 32 : 128;
	int len;

	if (size == 0)
		return buf;
	(void)portguard_addr_to_str(&key->addr, addr, sizeof(addr));
	if (key->addr.family == 0 || key->prefix >= full)
		len = snprintf(buf, size, "%s", addr);
	else
		len = snprintf(buf, size, "%s/%u", addr, key->prefix);
	/* never a truncated key */
	if (len < 0 || (unsigned int)len >= size)
		buf[0] = '\0';
	return buf;
}

static const char *portguard_rl_key_error(const char *str)
{
	size_t len = strlen(str);
	int shown = len > PORTGUARD_RL_ERR_TOKEN_MAX ?
		PORTGUARD_RL_ERR_TOKEN_MAX : (int)len;

	(void)snprintf(portguard_rl_errbuf, sizeof(portguard_rl_errbuf),
		       "invalid address or network '%.*s'", shown, str);
	return portguard_rl_errbuf;
}

int portguard_rl_key_parse(const char *str, unsigned int ipv4_prefix,
			   unsigned int ipv6_prefix,
			   struct portguard_rl_key *key_r, const char **error_r)
{
	struct portguard_addr addr;
	struct portguard_net net;
	const char *error;

	memset(key_r, 0, sizeof(*key_r));
	if (str == NULL)
		str = "";
	if (strchr(str, '/') == NULL) {
		if (portguard_addr_parse(str, &addr) < 0) {
			*error_r = portguard_rl_key_error(str);
			return -1;
		}
		portguard_rl_key_make(key_r, &addr, ipv4_prefix, ipv6_prefix);
		return 0;
	}
	/* an explicit prefix; v4-mapped /96.. becomes IPv4 */
	if (portguard_net_parse(str, &net, &error) < 0) {
		*error_r = portguard_rl_key_error(str);
		return -1;
	}
	key_r->addr = net.addr;
	key_r->prefix = net.prefix;
	portguard_rl_key_clear_host_bits(key_r);
	return 0;
}

bool portguard_rl_key_equals(const struct portguard_rl_key *a,
			     const struct portguard_rl_key *b)
{
	return a->addr.family == b->addr.family && a->prefix == b->prefix &&
		memcmp(a->addr.bytes, b->addr.bytes,
		       sizeof(a->addr.bytes)) == 0;
}

/* ---- failures ---- */

static unsigned int
portguard_rl_limit(const struct portguard_rl_config *config)
{
	if (config->fail_limit < 1)
		return 1;
	if (config->fail_limit > PORTGUARD_RL_MAX_LIMIT)
		return PORTGUARD_RL_MAX_LIMIT;
	return config->fail_limit;
}

/* Seconds from t to now; a time in the future (the clock went back)
   is as recent as now. */
static uint32_t portguard_rl_age(uint32_t t, uint32_t now)
{
	return now >= t ? now - t : 0;
}

static unsigned int
portguard_rl_fail_count(const struct portguard_rl_entry *entry)
{
	return entry->fail_count > PORTGUARD_RL_MAX_LIMIT ?
		PORTGUARD_RL_MAX_LIMIT : entry->fail_count;
}

/* The i-th oldest failure in the ring (i < fail_count). */
static uint32_t
portguard_rl_fail_time(const struct portguard_rl_entry *entry, unsigned int i)
{
	return entry->fail_times[(entry->fail_head + i) %
				 PORTGUARD_RL_MAX_LIMIT];
}

static void portguard_rl_clear_failures(struct portguard_rl_entry *entry)
{
	entry->fail_count = 0;
	entry->fail_head = 0;
	memset(entry->fail_times, 0, sizeof(entry->fail_times));
}

/* Drop the oldest failure. */
static void portguard_rl_drop_oldest(struct portguard_rl_entry *entry)
{
	entry->fail_head = (uint8_t)((entry->fail_head + 1) %
				     PORTGUARD_RL_MAX_LIMIT);
	entry->fail_count--;
}

/* Keep only failures within the window, at most limit of them. */
static void portguard_rl_prune(struct portguard_rl_entry *entry,
			       const struct portguard_rl_config *config,
			       uint32_t now)
{
	unsigned int limit = portguard_rl_limit(config);

	entry->fail_count = (uint8_t)portguard_rl_fail_count(entry);
	entry->fail_head %= PORTGUARD_RL_MAX_LIMIT;
	while (entry->fail_count > 0 &&
	       (entry->fail_count > limit ||
		portguard_rl_age(portguard_rl_fail_time(entry, 0), now) >=
		config->fail_window))
		portguard_rl_drop_oldest(entry);
	if (entry->fail_count == 0)
		entry->fail_head = 0;
}

unsigned int portguard_rl_failures(const struct portguard_rl_entry *entry,
				   const struct portguard_rl_config *config,
				   uint32_t now)
{
	unsigned int count = portguard_rl_fail_count(entry);
	unsigned int limit = portguard_rl_limit(config);
	unsigned int i, n = 0;

	/* only the newest limit failures count */
	for (i = count > limit ? count - limit : 0; i < count; i++) {
		if (portguard_rl_age(portguard_rl_fail_time(entry, i), now) <
		    config->fail_window)
			n++;
	}
	return n;
}

/* ---- bans ---- */

bool portguard_rl_is_banned(const struct portguard_rl_entry *entry,
			    uint32_t now, unsigned int *remaining_r)
{
	bool banned = entry->ban_until > now;

	if (remaining_r != NULL)
		*remaining_r = banned ? entry->ban_until - now : 0;
	return banned;
}

/* True if the ban history has decayed at now (or there is none). */
static bool
portguard_rl_history_decayed(const struct portguard_rl_entry *entry,
			     const struct portguard_rl_config *config,
			     uint32_t now)
{
	if (entry->ban_level == 0)
		return true;
	return now >= entry->ban_until &&
		now - entry->ban_until >= config->ban_duration_max;
}

/* Ban length at level (>= 1): ban_duration << (level - 1), capped. */
static unsigned int
portguard_rl_ban_secs(const struct portguard_rl_config *config,
		      unsigned int level)
{
	unsigned int shift = level == 0 ? 0 : level - 1;
	uint64_t secs;

	if (shift >= 32)
		return config->ban_duration_max;
	secs = (uint64_t)config->ban_duration << shift;
	return secs > config->ban_duration_max ?
		config->ban_duration_max : (unsigned int)secs;
}

/* The level the next ban at now gets. */
static unsigned int
portguard_rl_next_level(const struct portguard_rl_entry *entry,
			const struct portguard_rl_config *config, uint32_t now)
{
	if (portguard_rl_history_decayed(entry, config, now))
		return 1;
	return entry->ban_level >= UINT8_MAX ? UINT8_MAX :
		entry->ban_level + 1U;
}

/* Start a ban of secs at now; the failures that led to it are used up. */
static void portguard_rl_start_ban(struct portguard_rl_entry *entry,
				   uint32_t now, unsigned int level,
				   unsigned int secs)
{
	entry->ban_level = (uint8_t)level;
	entry->last_ban_start = now;
	entry->ban_until = secs > UINT32_MAX - now ? UINT32_MAX : now + secs;
	portguard_rl_clear_failures(entry);
}

unsigned int portguard_rl_count_failure(struct portguard_rl_entry *entry,
					const struct portguard_rl_config *config,
					uint32_t now)
{
	unsigned int limit = portguard_rl_limit(config);

	portguard_rl_prune(entry, config, now);
	if (entry->fail_count >= limit)
		portguard_rl_drop_oldest(entry);
	entry->fail_times[(entry->fail_head + entry->fail_count) %
			  PORTGUARD_RL_MAX_LIMIT] = now;
	entry->fail_count++;
	return portguard_rl_failures(entry, config, now);
}

enum portguard_rl_verdict
portguard_rl_fail(struct portguard_rl_entry *entry,
		  const struct portguard_rl_config *config, uint32_t now,
		  unsigned int *ban_secs_r)
{
	unsigned int limit = portguard_rl_limit(config);
	unsigned int level, secs;

	*ban_secs_r = 0;
	(void)portguard_rl_count_failure(entry, config, now);

	if (portguard_rl_is_banned(entry, now, NULL) ||
	    entry->fail_count < limit)
		return PORTGUARD_RL_COUNTED;

	level = portguard_rl_next_level(entry, config, now);
	secs = portguard_rl_ban_secs(config, level);
	portguard_rl_start_ban(entry, now, level, secs);
	entry->flags &= (uint8_t)~PORTGUARD_RL_FLAG_MANUAL;
	*ban_secs_r = secs;
	return PORTGUARD_RL_BANNED;
}

void portguard_rl_success(struct portguard_rl_entry *entry, uint32_t now)
{
	(void)now;
	portguard_rl_clear_failures(entry);
}

unsigned int portguard_rl_ban(struct portguard_rl_entry *entry,
			      const struct portguard_rl_config *config,
			      uint32_t now, unsigned int secs)
{
	unsigned int level;

	if (portguard_rl_is_banned(entry, now, NULL)) {
		/* replace the end of the ban in force; not another ban */
		level = entry->ban_level == 0 ? 1 : entry->ban_level;
	} else {
		level = portguard_rl_next_level(entry, config, now);
	}
	if (secs == 0)
		secs = portguard_rl_ban_secs(config, level);
	portguard_rl_start_ban(entry, now, level, secs);
	entry->flags |= PORTGUARD_RL_FLAG_MANUAL;
	return secs;
}

void portguard_rl_unban(struct portguard_rl_entry *entry, uint32_t now)
{
	/* the ban ends now: the history decays from here */
	if (entry->ban_until > now)
		entry->ban_until = now;
	entry->flags &= (uint8_t)~PORTGUARD_RL_FLAG_MANUAL;
	portguard_rl_clear_failures(entry);
}

bool portguard_rl_is_idle(const struct portguard_rl_entry *entry,
			  const struct portguard_rl_config *config,
			  uint32_t now)
{
	return !portguard_rl_is_banned(entry, now, NULL) &&
		portguard_rl_failures(entry, config, now) == 0 &&
		portguard_rl_history_decayed(entry, config, now);
}

unsigned int portguard_rl_auto_ban(struct portguard_rl_entry *entry,
				   const struct portguard_rl_config *config,
				   uint32_t now)
{
	unsigned int level, secs;

	level = portguard_rl_next_level(entry, config, now);
	secs = portguard_rl_ban_secs(config, level);
	portguard_rl_start_ban(entry, now, level, secs);
	entry->flags &= (uint8_t)~PORTGUARD_RL_FLAG_MANUAL;
	return secs;
}

unsigned int portguard_rl_window_estimate(unsigned int cur, unsigned int prev,
					  uint32_t now, unsigned int window)
{
	uint64_t part, total;

	if (window == 0)
		return cur;
	/* share of the previous fixed window that the sliding window
	   ending at now still covers */
	part = window - now % window;
	/* rounded up: right after a window boundary the previous window
	   still counts in full, and the estimate never drops a failure */
	total = (uint64_t)cur + ((uint64_t)prev * part + window - 1) / window;
	return total > UINT_MAX ? UINT_MAX : (unsigned int)total;
}

const char *portguard_rl_history_to_str(const struct portguard_rl_entry *entry,
					char *buf, unsigned int size)
{
	if (size == 0)
		return buf;
	(void)snprintf(buf, size, "v1 %u %u %u %u",
		       (unsigned int)entry->ban_until,
		       (unsigned int)entry->last_ban_start,
		       (unsigned int)entry->ban_level,
		       (unsigned int)entry->flags);
	return buf;
}

static int portguard_rl_parse_u32(const char **p, uint32_t max,
				  uint32_t *value_r)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -1;
	}
	*value_r = (uint32_t)v;
	*p = s;
	return 0;
}

int portguard_rl_history_parse(const char *str,
			       struct portguard_rl_entry *entry_r)
{
	uint32_t v[4];
	const uint32_t max[4] = { UINT32_MAX, UINT32_MAX, UINT8_MAX,
				  UINT8_MAX };
	unsigned int i;

	memset(entry_r, 0, sizeof(*entry_r));
	if (strncmp(str, "v1", 2) != 0)
		return -1;
	str += 2;
	for (i = 0; i < 4; i++) {
		if (*str != ' ')
			return -1;
		str++;
		if (portguard_rl_parse_u32(&str, max[i], &v[i]) < 0)
			return -1;
	}
	if (*str != '\0')
		return -1;
	entry_r->ban_until = v[0];
	entry_r->last_ban_start = v[1];
	entry_r->ban_level = (uint8_t)v[2];
	entry_r->flags = (uint8_t)v[3];
	return 0;
}

void portguard_rl_snapshot_take(const struct portguard_rl_entry *entry,
				struct portguard_rl_snapshot *snapshot_r)
{
	memset(snapshot_r, 0, sizeof(*snapshot_r));
	snapshot_r->ban_until = entry->ban_until;
	snapshot_r->last_ban_start = entry->last_ban_start;
	snapshot_r->ban_level = entry->ban_level;
	snapshot_r->flags = entry->flags;
}

void portguard_rl_undo_ban(struct portguard_rl_entry *entry,
			   const struct portguard_rl_snapshot *snapshot,
			   uint32_t started)
{
	if (entry->last_ban_start != started ||
	    entry->ban_level == snapshot->ban_level)
		return;
	entry->ban_until = snapshot->ban_until;
	entry->last_ban_start = snapshot->last_ban_start;
	entry->ban_level = snapshot->ban_level;
	entry->flags = snapshot->flags;
}

void portguard_rl_refund(struct portguard_rl_entry *entry, uint32_t when)
{
	unsigned int count = portguard_rl_fail_count(entry);
	unsigned int i, j;

	for (i = count; i > 0; i--) {
		if (portguard_rl_fail_time(entry, i - 1) != when)
			continue;
		/* close the gap: shift the newer ones down */
		for (j = i - 1; j + 1 < count; j++) {
			entry->fail_times[(entry->fail_head + j) %
					  PORTGUARD_RL_MAX_LIMIT] =
				portguard_rl_fail_time(entry, j + 1);
		}
		entry->fail_count = (uint8_t)(count - 1);
		return;
	}
}

/* Unit tests for portguard-shm.c (and portguard-siphash.c). Every test
   works in its own mkdtemp() directory under /tmp. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "test-common.h"

#include "portguard-shm.h"
#include "portguard-siphash.h"

#define T0 1700000000U
#define SIZE_1M (1024 * 1024)

/* the first fields of the file header (see portguard-shm.c) */
#define HDR_MAGIC_OFFSET 0
#define HDR_VERSION_OFFSET 8
#define HDR_SECRET_OFFSET 48
/* the lock stripes: 64 bytes each from offset 128; a 1 MiB table has 64 */
#define STRIPES_OFFSET 128
#define STRIPE_SIZE 64
#define STRIPES_1M 64

struct shm_test {
	char dir[64];
	char path[128];
};

static int shm_test_setup(void **state)
{
	struct shm_test *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	strcpy(t->dir, "/tmp/test-shm.XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		free(t);
		return -1;
	}
	(void)snprintf(t->path, sizeof(t->path), "%s/portguard.state",
		       t->dir);
	*state = t;
	return 0;
}

static int shm_test_teardown(void **state)
{
	struct shm_test *t = *state;
	char cmd[128];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	if (system(cmd) != 0)
		return -1;
	free(t);
	return 0;
}

static void key_n(struct portguard_rl_key *key_r, unsigned int n)
{
	memset(key_r, 0, sizeof(*key_r));
	key_r->addr.family = 4;
	key_r->addr.bytes[0] = 10;
	key_r->addr.bytes[1] = (uint8_t)(n >> 16);
	key_r->addr.bytes[2] = (uint8_t)(n >> 8);
	key_r->addr.bytes[3] = (uint8_t)n;
	key_r->prefix = 32;
}

static struct portguard_shm *shm_open_ok(const char *path, uint64_t size)
{
	struct portguard_shm *shm;
	const char *warning, *error;

	if (portguard_shm_open(path, size, 0600, &shm, &warning, &error) < 0)
		fail_msg("portguard_shm_open(%s) failed: %s", path, error);
	if (warning != NULL)
		fail_msg("portguard_shm_open(%s) warned: %s", path, warning);
	return shm;
}

/* ---- update callbacks ---- */

struct set_ctx {
	/* values stored into the entry */
	uint32_t counter; /* last_ban_start */
	uint32_t ban_until;
	/* what the callback saw */
	unsigned int calls;
	bool created;
};

static bool set_func(struct portguard_rl_entry *entry, bool created,
		     void *context)
{
	struct set_ctx *ctx = context;

	ctx->calls++;
	ctx->created = created;
	entry->last_ban_start = ctx->counter;
	entry->ban_until = ctx->ban_until;
	return true;
}

static bool inc_func(struct portguard_rl_entry *entry, bool created,
		     void *context)
{
	(void)created;
	(void)context;
	entry->last_ban_start++;
	return true;
}

static bool remove_func(struct portguard_rl_entry *entry, bool created,
			void *context)
{
	bool *was_created = context;

	(void)entry;
	if (was_created != NULL)
		*was_created = created;
	return false;
}

static bool kill_func(struct portguard_rl_entry *entry, bool created,
		      void *context)
{
	(void)created;
	(void)context;
	/* scribble over the entry, then die holding the stripe lock */
	memset(entry, 0xee, sizeof(*entry));
	(void)raise(SIGKILL);
	return true;
}

/* stores *(unsigned int *)context into last_ban_start */
static bool set_func_plain(struct portguard_rl_entry *entry, bool created,
			   void *context)
{
	(void)created;
	entry->last_ban_start = *(const unsigned int *)context;
	return true;
}

static void shm_set(struct portguard_shm *shm,
		    const struct portguard_rl_key *key, uint32_t now,
		    uint32_t counter, uint32_t ban_until)
{
	struct set_ctx ctx = { counter, ban_until, 0, false };
	const char *error;

	if (portguard_shm_update(shm, key, now, true, set_func, &ctx,
				 &error) != 1)
		fail_msg("portguard_shm_update() failed: %s", error);
}

static void shm_remove(struct portguard_shm *shm,
		       const struct portguard_rl_key *key)
{
	const char *error;

	if (portguard_shm_update(shm, key, T0, false, remove_func, NULL,
				 &error) != 1)
		fail_msg("portguard_shm_update(remove) failed");
}

static bool shm_has(struct portguard_shm *shm,
		    const struct portguard_rl_key *key)
{
	struct portguard_rl_entry entry;
	const char *error;
	int ret;

	ret = portguard_shm_lookup(shm, key, &entry, &error);
	if (ret < 0)
		fail_msg("portguard_shm_lookup() failed: %s", error);
	return ret > 0;
}

/* ---- siphash ---- */

struct sip_row {
	const char *label;
	size_t len;
	uint64_t hash;
};

/* the reference vectors: key 00..0f, message 00 01 02 .. of len bytes */
static const struct sip_row sip_rows[] = {
	{ "empty", 0, 0x726fdb47dd0e0e31ULL },
	{ "1 byte", 1, 0x74f839c593dc67fdULL },
	{ "7 bytes", 7, 0xab0200f58b01d137ULL },
	{ "8 bytes", 8, 0x93f5f5799a932462ULL },
	{ "15 bytes (the paper's example)", 15, 0xa129ca6149be45e5ULL },
	{ "63 bytes", 63, 0x958a324ceb064572ULL },
};

static void test_siphash_vectors(void **state)
{
	uint8_t key[16], msg[64];
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	for (i = 0; i < N_ELEMENTS(sip_rows); i++) {
		uint64_t hash = portguard_siphash24(key, msg, sip_rows[i].len);

		if (hash != sip_rows[i].hash)
			fail_msg("%s: %016llx, expected %016llx",
				 sip_rows[i].label, (unsigned long long)hash,
				 (unsigned long long)sip_rows[i].hash);
	}
}

/* ---- basics ---- */

static void test_shm_create_reopen(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm;
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	const char *warning, *error;
	struct stat st;
	unsigned int i;

	assert_int_equal(portguard_shm_open(t->path, SIZE_1M, 0640, &shm,
					    &warning, &error), 0);
	assert_null(warning);
	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_size, SIZE_1M);
	assert_int_equal(st.st_mode & 0777, 0640);
	/* 1 MiB: a header of a few KiB, then 100-byte slots */
	assert_true(portguard_shm_capacity(shm) <= SIZE_1M / 100);
	assert_true(portguard_shm_capacity(shm) >= SIZE_1M / 100 - 200);
	assert_int_equal(portguard_shm_capacity(shm) % PORTGUARD_SHM_WAYS, 0);
	assert_int_equal(portguard_shm_count(shm), 0);
	for (i = 0; i < 100; i++) {
		key_n(&key, i);
		shm_set(shm, &key, T0 + i, 1000 + i, 0);
	}
	assert_int_equal(portguard_shm_count(shm), 100);
	portguard_shm_close(&shm);
	assert_null(shm);

	/* no temporary files left behind */
	assert_int_equal(portguard_shm_open(t->path, SIZE_1M, 0640, &shm,
					    &warning, &error), 0);
	assert_null(warning);
	assert_int_equal(portguard_shm_count(shm), 100);
	for (i = 0; i < 100; i++) {
		key_n(&key, i);
		assert_int_equal(portguard_shm_lookup(shm, &key, &entry,
						      &error), 1);
		assert_int_equal(entry.last_ban_start, 1000 + i);
		assert_int_equal(entry.last_seen, T0 + i);
	}
	portguard_shm_close(&shm);
}

static void test_shm_size_limits(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm;
	const char *warning, *error = NULL;

	assert_int_equal(portguard_shm_open(t->path, PORTGUARD_SHM_MIN_SIZE - 1,
					    0600, &shm, &warning, &error), -1);
	assert_null(shm);
	assert_non_null(strstr(error, "out of range"));
	assert_int_equal(access(t->path, F_OK), -1);

	/* the minimum size works; 1,000,000 keys fit into 128 MiB */
	shm = shm_open_ok(t->path, PORTGUARD_SHM_MIN_SIZE);
	assert_true(portguard_shm_capacity(shm) >= PORTGUARD_SHM_WAYS);
	portguard_shm_close(&shm);
	assert_int_equal(portguard_shm_open(t->path, 128 * SIZE_1M, 0600,
					    &shm, &warning, &error), 0);
	assert_non_null(strstr(warning, "size changed"));
	assert_true(portguard_shm_capacity(shm) >= 1000000);
	portguard_shm_close(&shm);

	/* a directory in the way: an error, not a rebuild */
	assert_int_equal(portguard_shm_open(t->dir, SIZE_1M, 0600, &shm,
					    &warning, &error), -1);
	assert_non_null(strstr(error, t->dir));
	assert_null(warning);
}

static void test_shm_crud(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path, SIZE_1M);
	struct set_ctx ctx = { 7, 0, 0, false };
	struct portguard_rl_entry entry;
	struct portguard_rl_key key, other;
	const char *error;
	bool created = false;

	key_n(&key, 1);
	key_n(&other, 2);

	/* absent, create == false: func not called */
	assert_int_equal(portguard_shm_update(shm, &key, T0, false, set_func,
					      &ctx, &error), 0);
	assert_int_equal(ctx.calls, 0);
	assert_int_equal(portguard_shm_lookup(shm, &key, &entry, &error), 0);

	/* func returning false on a new slot stores nothing */
	assert_int_equal(portguard_shm_update(shm, &key, T0, true,
					      remove_func, &created, &error),
			 1);
	assert_true(created);
	assert_int_equal(portguard_shm_count(shm), 0);

	/* insert */
	assert_int_equal(portguard_shm_update(shm, &key, T0 + 1, true,
					      set_func, &ctx, &error), 1);
	assert_int_equal(ctx.calls, 1);
	assert_true(ctx.created);
	assert_int_equal(portguard_shm_lookup(shm, &key, &entry, &error), 1);
	assert_int_equal(entry.last_ban_start, 7);
	assert_int_equal(entry.last_seen, T0 + 1);
	assert_int_equal(portguard_shm_lookup(shm, &other, &entry, &error),
			 0);

	/* update: sees the stored entry, last_seen moves */
	assert_int_equal(portguard_shm_update(shm, &key, T0 + 5, true,
					      inc_func, NULL, &error), 1);
	assert_int_equal(portguard_shm_update(shm, &key, T0 + 6, false,
					      inc_func, NULL, &error), 1);
	assert_int_equal(portguard_shm_lookup(shm, &key, &entry, &error), 1);
	assert_int_equal(entry.last_ban_start, 9);
	assert_int_equal(entry.last_seen, T0 + 6);
	ctx.calls = 0;
	assert_int_equal(portguard_shm_update(shm, &key, T0 + 7, true,
					      set_func, &ctx, &error), 1);
	assert_false(ctx.created);
	assert_int_equal(portguard_shm_count(shm), 1);

	/* remove */
	shm_set(shm, &other, T0, 1, 0);
	assert_int_equal(portguard_shm_count(shm), 2);
	assert_int_equal(portguard_shm_update(shm, &key, T0 + 8, false,
					      remove_func, &created, &error),
			 1);
	assert_false(created);
	assert_int_equal(portguard_shm_lookup(shm, &key, &entry, &error), 0);
	assert_true(shm_has(shm, &other));
	assert_int_equal(portguard_shm_count(shm), 1);
	portguard_shm_close(&shm);
}

/* IPv4 and IPv6 keys with the same bytes, and prefixes, are distinct */
static void test_shm_key_identity(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path, SIZE_1M);
	struct portguard_rl_entry entry;
	struct portguard_rl_key keys[4];
	const char *error;
	unsigned int i;

	assert_int_equal(portguard_rl_key_parse("192.0.2.0/24", 32, 64,
						&keys[0], &error), 0);
	assert_int_equal(portguard_rl_key_parse("192.0.2.0/25", 32, 64,
						&keys[1], &error), 0);
	assert_int_equal(portguard_rl_key_parse("c000:200::/24", 32, 64,
						&keys[2], &error), 0);
	assert_int_equal(portguard_rl_key_parse("2001:db8::/64", 32, 64,
						&keys[3], &error), 0);
	for (i = 0; i < N_ELEMENTS(keys); i++)
		shm_set(shm, &keys[i], T0, 100 + i, 0);
	for (i = 0; i < N_ELEMENTS(keys); i++) {
		assert_int_equal(portguard_shm_lookup(shm, &keys[i], &entry,
						      &error), 1);
		assert_int_equal(entry.last_ban_start, 100 + i);
	}
	portguard_shm_close(&shm);
}

/* ---- full buckets ---- */

struct collect_ctx {
	struct portguard_rl_key *keys;
	struct portguard_rl_entry *entries;
	unsigned int count, max;
	unsigned int stop_after;
	struct portguard_shm *update_shm;
};

static bool collect_func(const struct portguard_rl_key *key,
			 const struct portguard_rl_entry *entry, void *context)
{
	struct collect_ctx *ctx = context;
	const char *error;

	if (ctx->count < ctx->max) {
		if (ctx->keys != NULL)
			ctx->keys[ctx->count] = *key;
		if (ctx->entries != NULL)
			ctx->entries[ctx->count] = *entry;
	}
	ctx->count++;
	if (ctx->update_shm != NULL &&
	    portguard_shm_update(ctx->update_shm, key, T0, false, inc_func,
				 NULL, &error) != 1)
		fail_msg("update from inside iterate failed");
	return ctx->stop_after == 0 || ctx->count < ctx->stop_after;
}

/* Insert keys until every slot is used; returns the number of keys
   inserted. The keys are 10.x.y.z from key number 0 up. */
static unsigned int shm_fill(struct portguard_shm *shm)
{
	unsigned int capacity = portguard_shm_capacity(shm);
	struct portguard_rl_key key;
	unsigned int n;

	for (n = 0; n < capacity * 50; n++) {
		key_n(&key, n);
		shm_set(shm, &key, T0 + n, n, 0);
		if (n + 1 >= capacity && portguard_shm_count(shm) == capacity)
			return n + 1;
	}
	fail_msg("the table never filled up");
	return 0;
}

/* The newcomer's two buckets are A and B; members[0..WAYS-1] are A's
   keys and members[WAYS..2*WAYS-1] B's, each in slot order. */
#define EVICT_MEMBERS (2 * PORTGUARD_SHM_WAYS)
#define B(i) (PORTGUARD_SHM_WAYS + (i))
#define NO_BAN INT32_MIN

struct evict_set {
	unsigned int member;
	/* relative to now */
	int last_seen, ban_until;
};

struct evict_row {
	const char *label;
	/* if true, every member is banned (member j until now + 500 + j),
	   else none; every member's last_seen is now - 1 - j % 7 */
	bool all_banned;
	/* then these members are set like this */
	unsigned int n_set;
	struct evict_set set[4];
	unsigned int evicted;
};

static const struct evict_row evict_rows[] = {
	{ "the stalest goes, in the first bucket", false, 2,
	  { { 3, -80, NO_BAN }, { B(5), -70, NO_BAN } }, 3 },
	{ "the stalest goes, in the second bucket", false, 2,
	  { { 3, -70, NO_BAN }, { B(5), -80, NO_BAN } }, B(5) },
	{ "the stalest is the first member", false, 2,
	  { { 0, -90, NO_BAN }, { B(15), -80, NO_BAN } }, 0 },
	{ "the stalest is the last member", false, 2,
	  { { 0, -80, NO_BAN }, { B(15), -90, NO_BAN } }, B(15) },
	{ "a banned stalest stays", false, 2,
	  { { 3, -90, 100 }, { B(5), -80, NO_BAN } }, B(5) },
	{ "banned stalest in both buckets stay", false, 3,
	  { { 3, -90, 100 }, { B(5), -85, 5 }, { 10, -60, NO_BAN } }, 10 },
	{ "an expired ban is no ban", false, 2,
	  { { B(2), -90, -5 }, { 3, -80, NO_BAN } }, B(2) },
	{ "a ban ending now is no ban", false, 2,
	  { { B(2), -90, 0 }, { 3, -80, NO_BAN } }, B(2) },
	{ "only the freshest is not banned", true, 1,
	  { { B(9), 0, NO_BAN } }, B(9) },
	{ "all banned: the ban ending first goes", true, 2,
	  { { B(6), -5, 100 }, { 4, -5, 200 } }, B(6) },
	{ "all banned: last_seen does not matter", true, 2,
	  { { 4, 0, 100 }, { B(14), -90, 300 } }, 4 },
};

/* Which of keys[0..n-1] is no longer in the table? */
static unsigned int shm_missing(struct portguard_shm *shm,
				const struct portguard_rl_key *keys,
				unsigned int n)
{
	unsigned int i, missing = n, count = 0;

	for (i = 0; i < n; i++) {
		if (!shm_has(shm, &keys[i])) {
			missing = i;
			count++;
		}
	}
	if (count != 1)
		fail_msg("%u keys missing, expected 1", count);
	return missing;
}

/* Insert newcomer into the full table, find the key it evicted among
   keys[] (as iterated: bucket by bucket), then undo: the evicted key
   goes back into its slot, the only free one. Returns the index of the
   evicted key. */
static unsigned int shm_probe(struct portguard_shm *shm,
			      const struct portguard_rl_key *newcomer,
			      const struct portguard_rl_key *keys,
			      unsigned int capacity, uint32_t now)
{
	unsigned int evicted;

	shm_set(shm, newcomer, now, 0, 0);
	evicted = shm_missing(shm, keys, capacity);
	shm_remove(shm, newcomer);
	shm_set(shm, &keys[evicted], now, 0, 0);
	assert_int_equal(portguard_shm_count(shm), capacity);
	return evicted;
}

/* Where in the iteration order is key? */
static unsigned int shm_position(struct portguard_shm *shm,
				 const struct portguard_rl_key *key,
				 struct portguard_rl_key *keys,
				 unsigned int capacity)
{
	struct collect_ctx ctx = { keys, NULL, 0, capacity, 0, NULL };
	const char *error;
	unsigned int i;

	assert_int_equal(portguard_shm_iterate(shm, collect_func, &ctx,
					       &error), 0);
	for (i = 0; i < ctx.count && i < capacity; i++) {
		if (portguard_rl_key_equals(&keys[i], key))
			return i;
	}
	fail_msg("key not iterated");
	return 0;
}

/* Fill the table, then find a newcomer key and its two (distinct)
   buckets' members: members[0..WAYS-1] in A, the rest in B, each in slot
   order. keys[] gets the full table in iteration order. */
static void shm_pair_setup(struct portguard_shm *shm,
			   struct portguard_rl_key *keys,
			   unsigned int capacity, uint32_t now,
			   struct portguard_rl_key *newcomer_r,
			   struct portguard_rl_key *members_r)
{
	struct collect_ctx ctx = { keys, NULL, 0, capacity, 0, NULL };
	const char *error;
	char addr[32];
	unsigned int j, n, group_a = 0, group_b = 0;

	(void)shm_fill(shm);
	assert_int_equal(portguard_shm_iterate(shm, collect_func, &ctx,
					       &error), 0);
	assert_int_equal(ctx.count, capacity);

	/* a full table iterates bucket by bucket: find the newcomer's two
	   buckets from whom it pushes out. First the one with the stalest
	   key; then, with all of that bucket fresh, the other. A newcomer
	   whose two buckets are one (or look so) is replaced. */
	for (n = 1; n < 100; n++) {
		(void)snprintf(addr, sizeof(addr), "192.0.2.%u", n);
		assert_int_equal(portguard_rl_key_parse(addr, 32, 64,
							newcomer_r, &error),
				 0);
		group_a = shm_probe(shm, newcomer_r, keys, capacity, now) /
			PORTGUARD_SHM_WAYS;
		for (j = 0; j < PORTGUARD_SHM_WAYS; j++) {
			shm_set(shm, &keys[group_a * PORTGUARD_SHM_WAYS + j],
				now, 0, 0);
		}
		group_b = shm_probe(shm, newcomer_r, keys, capacity, now) /
			PORTGUARD_SHM_WAYS;
		if (group_b != group_a)
			break;
	}
	assert_true(group_a != group_b);
	memcpy(members_r, &keys[group_a * PORTGUARD_SHM_WAYS],
	       PORTGUARD_SHM_WAYS * sizeof(*keys));
	memcpy(members_r + PORTGUARD_SHM_WAYS,
	       &keys[group_b * PORTGUARD_SHM_WAYS],
	       PORTGUARD_SHM_WAYS * sizeof(*keys));
}

static void test_shm_eviction(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path,
						PORTGUARD_SHM_MIN_SIZE);
	unsigned int capacity = portguard_shm_capacity(shm);
	struct portguard_rl_key *keys = calloc(capacity, sizeof(*keys));
	struct portguard_rl_key members[EVICT_MEMBERS];
	struct portguard_rl_key newcomer;
	uint32_t now = T0 + 10000000;
	unsigned int i, j;

	assert_non_null(keys);
	shm_pair_setup(shm, keys, capacity, now, &newcomer, members);

	for (i = 0; i < N_ELEMENTS(evict_rows); i++) {
		const struct evict_row *row = &evict_rows[i];
		int last_seen[EVICT_MEMBERS], ban_until[EVICT_MEMBERS];

		for (j = 0; j < EVICT_MEMBERS; j++) {
			last_seen[j] = -1 - (int)(j % 7);
			ban_until[j] = row->all_banned ? 500 + (int)j : NO_BAN;
		}
		for (j = 0; j < row->n_set; j++) {
			last_seen[row->set[j].member] = row->set[j].last_seen;
			ban_until[row->set[j].member] = row->set[j].ban_until;
		}
		for (j = 0; j < EVICT_MEMBERS; j++) {
			shm_set(shm, &members[j],
				(uint32_t)((int64_t)now + last_seen[j]),
				j, ban_until[j] == NO_BAN ? 0 :
				(uint32_t)((int64_t)now + ban_until[j]));
		}
		shm_set(shm, &newcomer, now, 99, 0);
		CHECK_INT(row->label,
			  shm_missing(shm, members, EVICT_MEMBERS),
			  row->evicted);
		CHECK_INT(row->label, shm_has(shm, &newcomer), true);
		CHECK_INT(row->label, portguard_shm_count(shm), capacity);
		/* back to the 32 members: the evicted one's bucket has the
		   only free slot */
		shm_remove(shm, &newcomer);
		shm_set(shm, &members[row->evicted], now, 0, 0);
		CHECK_INT(row->label, portguard_shm_count(shm), capacity);
	}

	/* no eviction while either bucket has room: A full, 3 free in B,
	   then the other way round */
	for (i = 0; i < 2; i++) {
		unsigned int base = i == 0 ? PORTGUARD_SHM_WAYS : 0;

		for (j = 1; j <= 3; j++)
			shm_remove(shm, &members[base + j]);
		shm_set(shm, &newcomer, now, 99, 0);
		CHECK_INT("room in one bucket", portguard_shm_count(shm),
			  capacity - 2);
		for (j = 0; j < EVICT_MEMBERS; j++) {
			CHECK_INT("room in one bucket",
				  shm_has(shm, &members[j]),
				  j < base + 1 || j > base + 3);
		}
		shm_remove(shm, &newcomer);
		/* each goes back where it was: every other bucket is full */
		for (j = 1; j <= 3; j++)
			shm_set(shm, &members[base + j], now, 0, 0);
		CHECK_INT("room in one bucket", portguard_shm_count(shm),
			  capacity);
	}
	free(keys);
	portguard_shm_close(&shm);
}

/* The less loaded bucket takes a new key, whichever of the two it is. */
static void test_shm_less_loaded(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path,
						PORTGUARD_SHM_MIN_SIZE);
	unsigned int capacity = portguard_shm_capacity(shm);
	struct portguard_rl_key *keys = calloc(capacity, sizeof(*keys));
	struct portguard_rl_key members[EVICT_MEMBERS];
	struct portguard_rl_key newcomer;
	const char *error;
	uint32_t now = T0 + 10000000;
	unsigned int i, j, pos;

	assert_non_null(keys);
	/* 1 slot free in A (slot 0), 3 in B (slots 1..3); then, in a
	   refilled table, 3 in A (slots 1..3), 1 in B (slot 0). The
	   newcomer takes the first free slot of the bucket it goes to, so
	   it is iterated right after that bucket's slot 0. (No undoing in
	   between: members put back could tie on the two buckets.) */
	for (i = 0; i < 2; i++) {
		unsigned int more = i == 0 ? PORTGUARD_SHM_WAYS : 0;
		unsigned int fewer = i == 0 ? 0 : PORTGUARD_SHM_WAYS;

		assert_int_equal(portguard_shm_flush(shm, &error), 0);
		shm_pair_setup(shm, keys, capacity, now, &newcomer, members);
		shm_remove(shm, &members[fewer]);
		for (j = 1; j <= 3; j++)
			shm_remove(shm, &members[more + j]);
		shm_set(shm, &newcomer, now, 99, 0);
		CHECK_INT("less loaded", portguard_shm_count(shm),
			  capacity - 3);
		pos = shm_position(shm, &newcomer, keys, capacity);
		CHECK_INT("less loaded", pos > 0, true);
		CHECK_INT("less loaded",
			  portguard_rl_key_equals(&keys[pos - 1],
						  &members[more]), true);
		CHECK_INT("less loaded",
			  portguard_rl_key_equals(&keys[pos + 1],
						  &members[more + 4]), true);
	}
	free(keys);
	portguard_shm_close(&shm);
}

/* A full table goes on taking new keys; the newest always stay. */
static void test_shm_full_table(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path,
						PORTGUARD_SHM_MIN_SIZE);
	unsigned int capacity = portguard_shm_capacity(shm);
	struct portguard_rl_key key;
	unsigned int n, i;

	n = shm_fill(shm);
	for (i = n; i < n + 3 * capacity; i++) {
		key_n(&key, i);
		shm_set(shm, &key, T0 + i, i, 0);
		assert_true(shm_has(shm, &key));
	}
	assert_int_equal(portguard_shm_count(shm), capacity);
	/* the newest key of every bucket is still there: at least the
	   last one inserted, and the very first ones are long gone */
	assert_true(shm_has(shm, &key));
	key_n(&key, 0);
	assert_false(shm_has(shm, &key));
	portguard_shm_close(&shm);
}

/* Key number n of the million: even n are IPv4 hosts 10.x.y.z (up to
   2^24 of them), odd n IPv6 /64 networks 2001:db8:nnnn:nnnn::/64. */
static void key_mixed(struct portguard_rl_key *key_r, unsigned int n)
{
	unsigned int m = n >> 1;

	memset(key_r, 0, sizeof(*key_r));
	if ((n & 1) == 0) {
		key_r->addr.family = 4;
		key_r->addr.bytes[0] = 10;
		key_r->addr.bytes[1] = (uint8_t)(m >> 16);
		key_r->addr.bytes[2] = (uint8_t)(m >> 8);
		key_r->addr.bytes[3] = (uint8_t)m;
		key_r->prefix = 32;
	} else {
		key_r->addr.family = 6;
		key_r->addr.bytes[0] = 0x20;
		key_r->addr.bytes[1] = 0x01;
		key_r->addr.bytes[2] = 0x0d;
		key_r->addr.bytes[3] = 0xb8;
		key_r->addr.bytes[4] = (uint8_t)(m >> 24);
		key_r->addr.bytes[5] = (uint8_t)(m >> 16);
		key_r->addr.bytes[6] = (uint8_t)(m >> 8);
		key_r->addr.bytes[7] = (uint8_t)m;
		key_r->prefix = 64;
	}
}

#define MILLION 1000000U

/* The requirement: 128 MiB hold 1,000,000 distinct keys, none evicted. */
static void test_shm_million_keys(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path, 128 * SIZE_1M);
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	const char *error;
	unsigned int n;

	assert_true(portguard_shm_capacity(shm) >= MILLION);
	for (n = 0; n < MILLION; n++) {
		key_mixed(&key, n);
		if (portguard_shm_update(shm, &key, T0 + n / 1000, true,
					 set_func_plain, &n, &error) != 1)
			fail_msg("insert %u failed: %s", n, error);
	}
	CHECK_INT("1M keys", portguard_shm_count(shm), MILLION);

	/* a sample (every 7th, and the first and last ones) is there with
	   its own entry */
	for (n = 0; n < MILLION; n += n < 100 || n >= MILLION - 100 ? 1 : 7) {
		key_mixed(&key, n);
		if (portguard_shm_lookup(shm, &key, &entry, &error) != 1)
			fail_msg("key %u not found", n);
		CHECK_INT("1M keys", entry.last_ban_start, n);
		CHECK_INT("1M keys", entry.last_seen, T0 + n / 1000);
	}
	/* and a key never inserted is not */
	key_mixed(&key, MILLION);
	assert_false(shm_has(shm, &key));
	portguard_shm_close(&shm);
}

/* ---- damaged files ---- */

enum damage {
	DAMAGE_RANDOM_HEADER,
	DAMAGE_MAGIC,
	DAMAGE_VERSION,
	DAMAGE_SECRET,
	DAMAGE_TRUNCATE_HALF,
	DAMAGE_TRUNCATE_HEADER,
	DAMAGE_TRUNCATE_EMPTY,
	DAMAGE_EXTEND,
	DAMAGE_TEXT_FILE,
};

struct damage_row {
	const char *label;
	enum damage damage;
	/* expected in the warning */
	const char *reason;
};

static const struct damage_row damage_rows[] = {
	{ "random bytes over the header", DAMAGE_RANDOM_HEADER, "rebuilt" },
	{ "wrong magic", DAMAGE_MAGIC, "bad magic" },
	{ "wrong version", DAMAGE_VERSION, "version 99" },
	{ "secret changed", DAMAGE_SECRET, "checksum" },
	{ "truncated to half", DAMAGE_TRUNCATE_HALF, "does not match" },
	{ "truncated inside the header", DAMAGE_TRUNCATE_HEADER,
	  "bad file size 100" },
	{ "truncated to 0", DAMAGE_TRUNCATE_EMPTY, "bad file size 0" },
	{ "extended", DAMAGE_EXTEND, "does not match" },
	{ "a text file", DAMAGE_TEXT_FILE, "bad file size" },
};

static void shm_damage(const char *path, enum damage damage)
{
	uint8_t buf[256];
	uint32_t version = 99;
	unsigned int i;
	int fd;

	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	switch (damage) {
	case DAMAGE_RANDOM_HEADER:
		srandom((unsigned int)getpid());
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)random();
		assert_int_equal(pwrite(fd, buf, sizeof(buf), 0),
				 sizeof(buf));
		break;
	case DAMAGE_MAGIC:
		assert_int_equal(pwrite(fd, "X", 1, HDR_MAGIC_OFFSET), 1);
		break;
	case DAMAGE_VERSION:
		assert_int_equal(pwrite(fd, &version, sizeof(version),
					HDR_VERSION_OFFSET), sizeof(version));
		break;
	case DAMAGE_SECRET:
		assert_int_equal(pread(fd, buf, 1, HDR_SECRET_OFFSET), 1);
		buf[0] ^= 0x01;
		assert_int_equal(pwrite(fd, buf, 1, HDR_SECRET_OFFSET), 1);
		break;
	case DAMAGE_TRUNCATE_HALF:
		assert_int_equal(ftruncate(fd, SIZE_1M / 2), 0);
		break;
	case DAMAGE_TRUNCATE_HEADER:
		assert_int_equal(ftruncate(fd, 100), 0);
		break;
	case DAMAGE_TRUNCATE_EMPTY:
		assert_int_equal(ftruncate(fd, 0), 0);
		break;
	case DAMAGE_EXTEND:
		assert_int_equal(ftruncate(fd, SIZE_1M + 4096), 0);
		break;
	case DAMAGE_TEXT_FILE:
		assert_int_equal(ftruncate(fd, 0), 0);
		assert_int_equal(pwrite(fd, "hello\n", 6, 0), 6);
		break;
	}
	(void)close(fd);
}

static void test_shm_damaged(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm;
	struct portguard_rl_key key;
	const char *warning, *error;
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(damage_rows); i++) {
		const struct damage_row *row = &damage_rows[i];

		(void)unlink(t->path);
		shm = shm_open_ok(t->path, SIZE_1M);
		key_n(&key, 1);
		shm_set(shm, &key, T0, 1, 0);
		portguard_shm_close(&shm);

		shm_damage(t->path, row->damage);
		if (portguard_shm_open(t->path, SIZE_1M, 0600, &shm, &warning,
				       &error) < 0)
			fail_msg("%s: open failed: %s", row->label, error);
		if (warning == NULL || strstr(warning, row->reason) == NULL)
			fail_msg("%s: warning '%s', expected '%s'", row->label,
				 warning == NULL ? "(null)" : warning,
				 row->reason);
		/* a fresh, working table */
		CHECK_INT(row->label, portguard_shm_count(shm), 0);
		shm_set(shm, &key, T0, 2, 0);
		CHECK_INT(row->label, shm_has(shm, &key), true);
		portguard_shm_close(&shm);
		/* and it stays valid */
		if (portguard_shm_open(t->path, SIZE_1M, 0600, &shm, &warning,
				       &error) < 0 || warning != NULL)
			fail_msg("%s: reopen failed or warned", row->label);
		CHECK_INT(row->label, portguard_shm_count(shm), 1);
		portguard_shm_close(&shm);
	}
}

static void test_shm_size_change(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm, *old;
	struct portguard_rl_key key;
	const char *warning, *error;
	unsigned int capacity;
	struct stat st;

	old = shm_open_ok(t->path, SIZE_1M);
	capacity = portguard_shm_capacity(old);
	key_n(&key, 1);
	shm_set(old, &key, T0, 1, 0);

	assert_int_equal(portguard_shm_open(t->path, 2 * SIZE_1M, 0600, &shm,
					    &warning, &error), 0);
	assert_non_null(warning);
	assert_non_null(strstr(warning, "size changed"));
	assert_non_null(strstr(warning, t->path));
	assert_true(portguard_shm_capacity(shm) > capacity);
	assert_int_equal(portguard_shm_count(shm), 0);
	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_size, 2 * SIZE_1M);

	/* the old mapping was renamed over, not destroyed: it still works */
	assert_true(shm_has(old, &key));
	shm_set(old, &key, T0, 2, 0);
	assert_false(shm_has(shm, &key));
	portguard_shm_close(&old);
	portguard_shm_close(&shm);

	/* back to 1 MiB */
	assert_int_equal(portguard_shm_open(t->path, SIZE_1M, 0600, &shm,
					    &warning, &error), 0);
	assert_non_null(strstr(warning, "size changed"));
	assert_int_equal(portguard_shm_capacity(shm), capacity);
	portguard_shm_close(&shm);
}

static bool never_func(const struct portguard_rl_key *key,
		       const struct portguard_rl_entry *entry, void *context)
{
	(void)key;
	(void)entry;
	(void)context;
	fail_msg("iterate called back on an unusable table");
	return false;
}

struct shrink_row {
	const char *label;
	off_t size; /* ftruncate() to this, -1 = zero the header */
	off_t then; /* then to this, 0 = leave */
	const char *error;
};

static const struct shrink_row shrink_rows[] = {
	{ "truncated to 0", 0, 0, "size changed underneath (0," },
	{ "truncated to half", SIZE_1M / 2, 0,
	  "size changed underneath (524288," },
	{ "extended", SIZE_1M * 2, 0, "size changed underneath (2097152," },
	{ "truncated, then extended back", 0, SIZE_1M,
	  "header overwritten underneath" },
};

/* the file shrinks under a live mapping: errors, never SIGBUS */
static void test_shm_truncated_while_mapped(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm;
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	const char *warning, *error;
	unsigned int i;
	int fd;

	key_n(&key, 1);
	for (i = 0; i < N_ELEMENTS(shrink_rows); i++) {
		const struct shrink_row *row = &shrink_rows[i];

		(void)unlink(t->path);
		shm = shm_open_ok(t->path, SIZE_1M);
		shm_set(shm, &key, T0, 1, 0);

		fd = open(t->path, O_RDWR);
		CHECK_INT(row->label, fd >= 0, true);
		CHECK_INT(row->label, ftruncate(fd, row->size), 0);
		if (row->then != 0)
			CHECK_INT(row->label, ftruncate(fd, row->then), 0);
		(void)close(fd);

		error = NULL;
		CHECK_INT(row->label,
			  portguard_shm_update(shm, &key, T0, true, inc_func,
					       NULL, &error), -1);
		if (error == NULL || strstr(error, row->error) == NULL)
			fail_msg("%s: error '%s'", row->label,
				 error == NULL ? "(null)" : error);
		CHECK_INT(row->label,
			  portguard_shm_lookup(shm, &key, &entry, &error), -1);
		CHECK_INT(row->label,
			  portguard_shm_iterate(shm, never_func, NULL,
						&error), -1);
		CHECK_INT(row->label, portguard_shm_flush(shm, &error), -1);
		CHECK_INT(row->label, portguard_shm_count(shm), 0);
		CHECK_INT(row->label, portguard_shm_capacity(shm) > 0, true);
		portguard_shm_close(&shm);

		/* reopening rebuilds */
		CHECK_INT(row->label,
			  portguard_shm_open(t->path, SIZE_1M, 0600, &shm,
					     &warning, &error), 0);
		CHECK_INT(row->label, warning != NULL, true);
		CHECK_INT(row->label, portguard_shm_update(shm, &key, T0, true,
							   inc_func, NULL,
							   &error), 1);
		portguard_shm_close(&shm);
	}
}

/* ---- iterate, flush, count ---- */

static void test_shm_iterate_flush(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path, SIZE_1M);
	struct portguard_rl_key keys[300];
	struct portguard_rl_entry entries[300];
	struct collect_ctx ctx;
	struct portguard_rl_key key;
	const char *error;
	unsigned int i, j, sum = 0;
	bool seen[300];

	for (i = 0; i < 300; i++) {
		key_n(&key, i);
		shm_set(shm, &key, T0 + i, i, 0);
	}
	assert_int_equal(portguard_shm_count(shm), 300);

	/* every entry exactly once, with its key */
	memset(&ctx, 0, sizeof(ctx));
	ctx.keys = keys;
	ctx.entries = entries;
	ctx.max = N_ELEMENTS(keys);
	assert_int_equal(portguard_shm_iterate(shm, collect_func, &ctx,
					       &error), 0);
	assert_int_equal(ctx.count, 300);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 300; i++) {
		j = entries[i].last_ban_start;
		assert_true(j < 300);
		assert_false(seen[j]);
		seen[j] = true;
		key_n(&key, j);
		assert_true(portguard_rl_key_equals(&key, &keys[i]));
		assert_int_equal(entries[i].last_seen, T0 + j);
	}

	/* stopping early */
	memset(&ctx, 0, sizeof(ctx));
	ctx.stop_after = 5;
	assert_int_equal(portguard_shm_iterate(shm, collect_func, &ctx,
					       &error), 0);
	assert_int_equal(ctx.count, 5);

	/* the callback may update the table (no lock is held) */
	memset(&ctx, 0, sizeof(ctx));
	ctx.update_shm = shm;
	assert_int_equal(portguard_shm_iterate(shm, collect_func, &ctx,
					       &error), 0);
	assert_int_equal(ctx.count, 300);
	for (i = 0; i < 300; i++) {
		struct portguard_rl_entry entry;

		key_n(&key, i);
		assert_int_equal(portguard_shm_lookup(shm, &key, &entry,
						      &error), 1);
		sum += entry.last_ban_start - i;
	}
	assert_int_equal(sum, 300);

	assert_int_equal(portguard_shm_flush(shm, &error), 0);
	assert_int_equal(portguard_shm_count(shm), 0);
	memset(&ctx, 0, sizeof(ctx));
	assert_int_equal(portguard_shm_iterate(shm, collect_func, &ctx,
					       &error), 0);
	assert_int_equal(ctx.count, 0);
	key_n(&key, 7);
	assert_false(shm_has(shm, &key));
	shm_set(shm, &key, T0, 1, 0);
	assert_int_equal(portguard_shm_count(shm), 1);
	portguard_shm_close(&shm);
}

/* ---- processes ---- */

#define CONC_PROCS 8
#define CONC_OPS 5000
#define CONC_KEYS 4

static int conc_child(const char *path, unsigned int child)
{
	struct portguard_shm *shm;
	struct portguard_rl_key key;
	const char *warning, *error;
	unsigned int i, seed = child * 7919 + 1;

	/* each child maps the file itself, as login processes do */
	if (portguard_shm_open(path, 4 * SIZE_1M, 0600, &shm, &warning,
			       &error) < 0 || warning != NULL)
		return 2;
	for (i = 0; i < CONC_OPS; i++) {
		key_n(&key, i % CONC_KEYS);
		if (portguard_shm_update(shm, &key, T0 + i, false, inc_func,
					 NULL, &error) != 1)
			return 3;
		/* and some churn: random other keys, many evicted */
		seed = seed * 1103515245 + 12345;
		key_n(&key, 1000 + (seed >> 8) % 100000);
		if (portguard_shm_update(shm, &key, T0 + i, true, inc_func,
					 NULL, &error) != 1)
			return 4;
	}
	portguard_shm_close(&shm);
	return 0;
}

static void test_shm_concurrency(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path, 4 * SIZE_1M);
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	const char *error;
	pid_t pids[CONC_PROCS];
	unsigned int i, total = 0;
	int status;

	/* the counters are banned "forever": never evicted by the churn */
	for (i = 0; i < CONC_KEYS; i++) {
		key_n(&key, i);
		shm_set(shm, &key, T0, 0, UINT32_MAX);
	}
	for (i = 0; i < CONC_PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0)
			_exit(conc_child(t->path, i));
	}
	for (i = 0; i < CONC_PROCS; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("child %u failed: status %d", i, status);
	}
	for (i = 0; i < CONC_KEYS; i++) {
		key_n(&key, i);
		assert_int_equal(portguard_shm_lookup(shm, &key, &entry,
						      &error), 1);
		total += entry.last_ban_start;
	}
	assert_int_equal(total, CONC_PROCS * CONC_OPS);
	portguard_shm_close(&shm);
}

/* a process killed while holding a stripe lock */
static void test_shm_owner_died(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path, SIZE_1M);
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	const char *error;
	unsigned int round;
	int status;
	pid_t pid;

	key_n(&key, 42);
	shm_set(shm, &key, T0, 10, 0);
	for (round = 0; round < 2; round++) {
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			(void)portguard_shm_update(shm, &key, T0, true,
						   kill_func, NULL, &error);
			_exit(1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);

		/* a hang here would be the bug: fail instead */
		(void)alarm(10);
		assert_int_equal(portguard_shm_update(shm, &key, T0 + 1, true,
						      inc_func, NULL, &error),
				 1);
		(void)alarm(0);
		/* the dead process's half-done change never landed */
		assert_int_equal(portguard_shm_lookup(shm, &key, &entry,
						      &error), 1);
		assert_int_equal(entry.last_ban_start, 11 + round);
		assert_int_equal(entry.ban_until, 0);
	}
	/* other processes lock it normally afterwards */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		_exit(portguard_shm_update(shm, &key, T0 + 2, true, inc_func,
					   NULL, &error) == 1 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(portguard_shm_lookup(shm, &key, &entry, &error), 1);
	assert_int_equal(entry.last_ban_start, 13);
	assert_int_equal(portguard_shm_count(shm), 1);
	portguard_shm_close(&shm);
}

/* ---- stuck and damaged lock stripes ---- */

/* Map path and lock every stripe with the library's own (robust,
   process-shared) mutexes, as a process in the middle of an update
   would hold one. */
static uint8_t *lock_all_stripes(const char *path)
{
	uint8_t *map;
	unsigned int i;
	int fd;

	fd = open(path, O_RDWR);
	if (fd < 0)
		return NULL;
	map = mmap(NULL, SIZE_1M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	(void)close(fd);
	if (map == MAP_FAILED)
		return NULL;
	for (i = 0; i < STRIPES_1M; i++) {
		if (pthread_mutex_lock((pthread_mutex_t *)(void *)
				       (map + STRIPES_OFFSET +
					i * STRIPE_SIZE)) != 0)
			return NULL;
	}
	return map;
}

static bool copy_file(const char *from, const char *to)
{
	static uint8_t buf[SIZE_1M];
	int in, out;
	bool ok;

	in = open(from, O_RDONLY);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok = in >= 0 && out >= 0 &&
		pread(in, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) &&
		pwrite(out, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf);
	if (in >= 0)
		(void)close(in);
	if (out >= 0)
		(void)close(out);
	return ok;
}

/* A copy of the file taken while every stripe was locked, by a process
   that is gone (as after a crash of the host with the page written back,
   or a backup restored): the locks would never be released. Opening the
   copy rebuilds it; the original, whose locks the kernel marked as
   abandoned, is repaired and kept. */
static void test_shm_stale_locks(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm;
	struct portguard_rl_key key;
	const char *warning, *error;
	char copy[160];
	int status;
	pid_t pid;

	(void)snprintf(copy, sizeof(copy), "%s.copy", t->path);
	shm = shm_open_ok(t->path, SIZE_1M);
	key_n(&key, 7);
	shm_set(shm, &key, T0, 1, 0);
	portguard_shm_close(&shm);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (lock_all_stripes(t->path) == NULL ||
		    !copy_file(t->path, copy))
			_exit(1);
		_exit(0);       /* exits holding every lock */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* a hang here would be the bug: fail instead */
	(void)alarm(20);
	assert_int_equal(portguard_shm_open(copy, SIZE_1M, 0600, &shm,
					    &warning, &error), 0);
	assert_non_null(warning);
	assert_non_null(strstr(warning, "which does not exist; file rebuilt"));
	assert_false(shm_has(shm, &key));
	shm_set(shm, &key, T0, 2, 0);
	assert_true(shm_has(shm, &key));
	portguard_shm_close(&shm);

	shm = shm_open_ok(t->path, SIZE_1M);
	assert_true(shm_has(shm, &key));
	assert_int_equal(portguard_shm_count(shm), 1);
	portguard_shm_close(&shm);
	(void)alarm(0);
}

/* damaged mutexes behind a valid header: an error for a process that
   has the table mapped, rebuilt at open */
static void test_shm_damaged_stripes(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm;
	struct portguard_rl_key key;
	const char *warning, *error;
	uint8_t junk[STRIPES_1M * STRIPE_SIZE];
	int fd;

	memset(junk, 0xff, sizeof(junk));
	shm = shm_open_ok(t->path, SIZE_1M);
	key_n(&key, 7);
	shm_set(shm, &key, T0, 1, 0);
	fd = open(t->path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), STRIPES_OFFSET),
			 (ssize_t)sizeof(junk));
	(void)close(fd);

	/* a process that has it mapped: errors, no hang, no abort */
	(void)alarm(20);
	error = NULL;
	assert_int_equal(portguard_shm_update(shm, &key, T0, true, inc_func,
					      NULL, &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, "damaged"));
	portguard_shm_close(&shm);

	assert_int_equal(portguard_shm_open(t->path, SIZE_1M, 0600, &shm,
					    &warning, &error), 0);
	(void)alarm(0);
	assert_non_null(warning);
	assert_non_null(strstr(warning, "lock stripe 0 damaged"));
	assert_non_null(strstr(warning, "; file rebuilt"));
	assert_false(shm_has(shm, &key));
	shm_set(shm, &key, T0, 2, 0);
	assert_true(shm_has(shm, &key));
	portguard_shm_close(&shm);
}

/* a lock held by a process that never lets go (stopped, hung): operations
   fail after the timeout instead of hanging; once it is gone they work
   again */
static void test_shm_lock_timeout(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm = shm_open_ok(t->path, SIZE_1M);
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	struct timespec t0, t1;
	const char *error;
	long msecs;
	int pipefd[2], status;
	char c;
	pid_t pid;

	key_n(&key, 7);
	shm_set(shm, &key, T0, 1, 0);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (lock_all_stripes(t->path) == NULL)
			_exit(1);
		if (write(pipefd[1], "x", 1) != 1)
			_exit(2);
		/* hold the locks; gone by itself should the parent fail */
		(void)alarm(30);
		for (;;)
			(void)pause();
	}
	assert_int_equal(read(pipefd[0], &c, 1), 1);

	(void)alarm(20);
	error = NULL;
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(portguard_shm_lookup(shm, &key, &entry, &error), -1);
	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_non_null(error);
	assert_non_null(strstr(error, "timed out after 1000 ms"));
	msecs = (t1.tv_sec - t0.tv_sec) * 1000 +
		(t1.tv_nsec - t0.tv_nsec) / 1000000;
	/* waited for the timeout (at least), not forever */
	assert_true(msecs >= PORTGUARD_SHM_LOCK_TIMEOUT_MSECS - 10);
	assert_int_equal(portguard_shm_update(shm, &key, T0, true, inc_func,
					      NULL, &error), -1);

	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(portguard_shm_update(shm, &key, T0, true, inc_func,
					      NULL, &error), 1);
	assert_int_equal(portguard_shm_lookup(shm, &key, &entry, &error), 1);
	assert_int_equal(entry.last_ban_start, 2);
	(void)alarm(0);
	(void)close(pipefd[0]);
	(void)close(pipefd[1]);
	portguard_shm_close(&shm);
}

/* two processes creating the file at once: both end up on one file */
static void test_shm_racing_creators(void **state)
{
	struct shm_test *t = *state;
	struct portguard_shm *shm;
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	const char *warning, *error;
	pid_t pids[CONC_PROCS];
	unsigned int i;
	int status;

	for (i = 0; i < CONC_PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			if (portguard_shm_open(t->path, SIZE_1M, 0600, &shm,
					       &warning, &error) < 0 ||
			    warning != NULL)
				_exit(2);
			key_n(&key, 1);
			_exit(portguard_shm_update(shm, &key, T0, true,
						   inc_func, NULL,
						   &error) == 1 ? 0 : 3);
		}
	}
	for (i = 0; i < CONC_PROCS; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("child %u failed: status %d", i, status);
	}
	shm = shm_open_ok(t->path, SIZE_1M);
	key_n(&key, 1);
	assert_int_equal(portguard_shm_lookup(shm, &key, &entry, &error), 1);
	assert_int_equal(entry.last_ban_start, CONC_PROCS);
	portguard_shm_close(&shm);
}

#define SHM_TEST(func) \
	cmocka_unit_test_setup_teardown(func, shm_test_setup, \
					shm_test_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vectors),
		SHM_TEST(test_shm_create_reopen),
		SHM_TEST(test_shm_size_limits),
		SHM_TEST(test_shm_crud),
		SHM_TEST(test_shm_key_identity),
		SHM_TEST(test_shm_eviction),
		SHM_TEST(test_shm_less_loaded),
		SHM_TEST(test_shm_full_table),
		SHM_TEST(test_shm_million_keys),
		SHM_TEST(test_shm_damaged),
		SHM_TEST(test_shm_size_change),
		SHM_TEST(test_shm_truncated_while_mapped),
		SHM_TEST(test_shm_iterate_flush),
		SHM_TEST(test_shm_concurrency),
		SHM_TEST(test_shm_owner_died),
		SHM_TEST(test_shm_racing_creators),
		SHM_TEST(test_shm_stale_locks),
		SHM_TEST(test_shm_damaged_stripes),
		SHM_TEST(test_shm_lock_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

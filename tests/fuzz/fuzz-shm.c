/* libFuzzer harness: the shared state table (portguard-shm.h).

   One table file of PORTGUARD_SHM_MIN_SIZE (64 KiB: 35 buckets, 560
   slots) in a private directory under $TMPDIR (or /tmp), removed at exit
   (a crash leaves it behind: $TMPDIR/portguard-fuzz-shm.*).
   Every input starts from a flushed table and runs a sequence of
   operations: updates (create or not; the callback counts a failure,
   a success, bans, unbans, or removes the entry), lookups, iteration,
   count, flush, bulk inserts of hundreds of keys (so buckets fill up and
   entries get evicted), reopen, reopen after a damaged header, and a file
   truncated or grown underneath.

   A reference model keeps, per key, its last entry and whether it is
   surely present, maybe present (evicted or not) or absent. Eviction
   needs a full bucket, i.e. at least PORTGUARD_SHM_WAYS other used slots,
   so an insert while fewer keys may be present evicts nothing; any other
   insert turns every "surely present" key into "maybe". Checked:
   - a lookup/update never sees data other than the model's last entry
     for that key, and never misses a surely present key; the callback
     gets created=true exactly for keys not in the table;
   - count() <= capacity, count() <= keys maybe present, count() >= keys
     surely present, and exactly the model's count while no eviction was
     possible; iterate() visits each key once, with the right entry, and
     every surely present key;
   - a valid file reopens with its contents, a damaged header is rebuilt
     with a warning, and a file whose size changed underneath makes every
     access fail with -1 (no SIGBUS). */

#include "fuzz-common.h"
#include "portguard-shm.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#define TABLE_SIZE PORTGUARD_SHM_MIN_SIZE
#define MODEL_SLOTS 8192 /* power of two, > keys per input */
#define MAX_OPS 600

enum key_state { ABSENT = 0, PRESENT, MAYBE };

struct rec {
	bool used; /* hash slot in use */
	struct portguard_rl_key key;
	enum key_state state;
	unsigned int sure_gen; /* PRESENT is sure only if == gen */
	unsigned int seen; /* iteration stamp */
	struct portguard_rl_entry entry;
};

static char dir_path[256], table_path[300], lock_path[310];
static struct portguard_shm *shm;
static struct rec *model;
static unsigned int gen, maybe_count, iter_stamp;
static bool evict_possible;
static const struct portguard_rl_config config = {
	.fail_limit = 3, .fail_window = 60, .ban_duration = 10,
	.ban_duration_max = 100
};

static void cleanup(void)
{
	if (shm != NULL)
		portguard_shm_close(&shm);
	(void)unlink(table_path);
	(void)unlink(lock_path);
	(void)rmdir(dir_path);
}

static void table_open(bool expect_warning)
{
	const char *warning = NULL, *error = NULL;

	FUZZ_CHECK(portguard_shm_open(table_path, TABLE_SIZE, 0600, &shm,
				      &warning, &error) == 0,
		   "open: %s", error);
	if (expect_warning)
		FUZZ_CHECK(warning != NULL, "damaged file not reported");
	else
		FUZZ_CHECK(warning == NULL, "unexpected warning: %s", warning);
}

static void init_once(void)
{
	const char *tmp = getenv("TMPDIR");

	if (shm != NULL)
		return;
	(void)snprintf(dir_path, sizeof(dir_path), "%s/portguard-fuzz-shm.XXXXXX",
		       tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir_path) == NULL) {
		perror("mkdtemp");
		abort();
	}
	(void)snprintf(table_path, sizeof(table_path), "%s/table", dir_path);
	(void)snprintf(lock_path, sizeof(lock_path), "%s.lock", table_path);
	model = calloc(MODEL_SLOTS, sizeof(*model));
	if (model == NULL)
		abort();
	table_open(false);
	FUZZ_CHECK(portguard_shm_capacity(shm) ==
		   (TABLE_SIZE - 8192) / (100 * PORTGUARD_SHM_WAYS) *
		   PORTGUARD_SHM_WAYS, "capacity %u",
		   portguard_shm_capacity(shm));
	atexit(cleanup);
}

/* ---- model ---- */

static struct rec *model_get(const struct portguard_rl_key *key)
{
	uint64_t h = 1469598103934665603ULL;
	const uint8_t *p = (const uint8_t *)key;
	unsigned int i;

	for (i = 0; i < sizeof(*key); i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	for (i = (unsigned int)h & (MODEL_SLOTS - 1);;
	     i = (i + 1) & (MODEL_SLOTS - 1)) {
		if (!model[i].used) {
			model[i].used = true;
			model[i].key = *key;
			model[i].state = ABSENT;
			return &model[i];
		}
		if (memcmp(&model[i].key, key, sizeof(*key)) == 0)
			return &model[i];
	}
}

static bool sure(const struct rec *r)
{
	return r->state == PRESENT && r->sure_gen == gen;
}

static void model_reset(void)
{
	memset(model, 0, MODEL_SLOTS * sizeof(*model));
	gen = 0;
	maybe_count = 0;
	evict_possible = false;
}

static void set_state(struct rec *r, enum key_state state)
{
	if (r->state == ABSENT && state != ABSENT)
		maybe_count++;
	else if (r->state != ABSENT && state == ABSENT)
		maybe_count--;
	r->state = state;
}

/* ---- operations ---- */

enum cb_action {
	CB_FAIL, CB_SUCCESS, CB_BAN, CB_UNBAN, CB_KEEP, CB_REMOVE,
	CB_ACTION_COUNT
};

struct cb_ctx {
	struct rec *rec;
	enum cb_action action;
	uint32_t now;
	bool called, created;
};

static bool update_cb(struct portguard_rl_entry *entry, bool created,
		      void *context)
{
	static const struct portguard_rl_entry zero;
	struct cb_ctx *ctx = context;
	struct rec *r = ctx->rec;
	unsigned int secs;

	FUZZ_CHECK(!ctx->called, "callback called twice");
	ctx->called = true;
	ctx->created = created;
	if (created) {
		FUZZ_CHECK(!sure(r), "created=true for a present key");
		FUZZ_CHECK(memcmp(entry, &zero, sizeof(zero)) == 0,
			   "new entry not zeroed");
	} else {
		FUZZ_CHECK(r->state != ABSENT, "created=false for an absent "
			   "key");
		FUZZ_CHECK(memcmp(entry, &r->entry, sizeof(*entry)) == 0,
			   "update sees wrong data for a key");
	}
	switch (ctx->action) {
	case CB_FAIL:
		(void)portguard_rl_fail(entry, &config, ctx->now, &secs);
		break;
	case CB_SUCCESS:
		portguard_rl_success(entry, ctx->now);
		break;
	case CB_BAN:
		(void)portguard_rl_ban(entry, &config, ctx->now, 0);
		break;
	case CB_UNBAN:
		portguard_rl_unban(entry, ctx->now);
		break;
	case CB_REMOVE:
		return false;
	default:
		break;
	}
	/* remember what was written; last_seen is set by the table */
	r->entry = *entry;
	r->entry.last_seen = ctx->now;
	return true;
}

static void do_update(const struct portguard_rl_key *key, uint32_t now,
		      bool create, enum cb_action action)
{
	struct cb_ctx ctx = { model_get(key), action, now, false, false };
	struct rec *r = ctx.rec;
	const char *error = NULL;
	bool was_sure = sure(r);
	unsigned int others;
	int ret;

	/* keys that may be in the table, other than this one */
	others = maybe_count - (r->state != ABSENT ? 1 : 0);
	ret = portguard_shm_update(shm, key, now, create, update_cb, &ctx,
				   &error);
	FUZZ_CHECK(ret >= 0, "update failed: %s", error);
	FUZZ_CHECK((ret == 1) == ctx.called, "return %d but called %d", ret,
		   ctx.called);
	if (ret == 0) {
		FUZZ_CHECK(!create, "create=true returned 0");
		FUZZ_CHECK(!was_sure, "present key not found by update");
		set_state(r, ABSENT);
		return;
	}
	if (action == CB_REMOVE) {
		set_state(r, ABSENT);
		return;
	}
	if (ctx.created && others >= PORTGUARD_SHM_WAYS) {
		/* both buckets may have been full: something may be gone */
		gen++;
		evict_possible = true;
	}
	set_state(r, PRESENT);
	r->sure_gen = gen;
}

static void do_lookup(const struct portguard_rl_key *key)
{
	struct portguard_rl_entry entry;
	struct rec *r = model_get(key);
	const char *error = NULL;
	int ret;

	ret = portguard_shm_lookup(shm, key, &entry, &error);
	FUZZ_CHECK(ret >= 0, "lookup failed: %s", error);
	if (ret == 0) {
		FUZZ_CHECK(!sure(r), "present key not found by lookup");
		set_state(r, ABSENT);
		return;
	}
	FUZZ_CHECK(r->state != ABSENT, "lookup found an absent key");
	FUZZ_CHECK(memcmp(&entry, &r->entry, sizeof(entry)) == 0,
		   "lookup returned wrong data for a key");
	set_state(r, PRESENT);
	r->sure_gen = gen;
}

static bool iter_cb(const struct portguard_rl_key *key,
		    const struct portguard_rl_entry *entry, void *context)
{
	struct rec *r = model_get(key);
	unsigned int *n = context;

	FUZZ_CHECK(r->state != ABSENT, "iterate: absent key");
	FUZZ_CHECK(r->seen != iter_stamp, "iterate: key visited twice");
	FUZZ_CHECK(memcmp(entry, &r->entry, sizeof(*entry)) == 0,
		   "iterate: wrong data");
	r->seen = iter_stamp;
	(*n)++;
	return true;
}

static void do_count_iterate(void)
{
	unsigned int count = portguard_shm_count(shm), n = 0, i, surely = 0;
	const char *error = NULL;

	iter_stamp++;
	FUZZ_CHECK(portguard_shm_iterate(shm, iter_cb, &n, &error) == 0,
		   "iterate: %s", error);
	FUZZ_CHECK(n == count, "iterate saw %u, count %u", n, count);
	FUZZ_CHECK(count <= portguard_shm_capacity(shm), "count %u > "
		   "capacity", count);
	FUZZ_CHECK(count <= maybe_count, "count %u > %u keys maybe present",
		   count, maybe_count);
	for (i = 0; i < MODEL_SLOTS; i++) {
		if (!model[i].used)
			continue;
		if (sure(&model[i])) {
			surely++;
			FUZZ_CHECK(model[i].seen == iter_stamp,
				   "iterate missed a present key");
		}
	}
	FUZZ_CHECK(count >= surely, "count %u < %u present", count, surely);
	if (!evict_possible)
		FUZZ_CHECK(count == maybe_count, "count %u, model %u", count,
			   maybe_count);
}

static void do_flush(void)
{
	const char *error = NULL;

	FUZZ_CHECK(portguard_shm_flush(shm, &error) == 0, "flush: %s", error);
	model_reset();
	FUZZ_CHECK(portguard_shm_count(shm) == 0, "count after flush");
}

static void make_key(struct portguard_rl_key *key, uint8_t a, uint8_t b)
{
	struct portguard_addr addr;
	uint8_t bytes[16] = { 0x20, 0x01, 0x0d, 0xb8 };

	if (a & 0x80) {
		bytes[7] = a;
		bytes[15] = b;
		portguard_addr_from_bytes(&addr, 6, bytes);
		portguard_rl_key_make(key, &addr, 32, (a & 0x40) ? 128 : 64);
	} else {
		bytes[0] = 198;
		bytes[1] = 51;
		bytes[2] = a;
		bytes[3] = b;
		portguard_addr_from_bytes(&addr, 4, bytes);
		portguard_rl_key_make(key, &addr, (a & 0x40) ? 24 : 32, 64);
	}
}

static void reopen(void)
{
	portguard_shm_close(&shm);
	FUZZ_CHECK(shm == NULL, "close did not clear the pointer");
	table_open(false);
}

static void damage_header(uint8_t where, uint8_t xor)
{
	int fd;
	uint8_t b;

	portguard_shm_close(&shm);
	fd = open(table_path, O_RDWR);
	FUZZ_CHECK(fd >= 0, "open table");
	/* magic .. checksum: every byte is checked */
	FUZZ_CHECK(pread(fd, &b, 1, where % 72) == 1, "pread");
	b ^= xor == 0 ? 1 : xor;
	FUZZ_CHECK(pwrite(fd, &b, 1, where % 72) == 1, "pwrite");
	(void)close(fd);
	table_open(true);
	model_reset();
}

static void resize_underneath(uint32_t arg)
{
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	struct cb_ctx ctx;
	const char *error = NULL;
	off_t size;

	size = (arg & 1) ? TABLE_SIZE + 1 + (off_t)(arg >> 20) :
		(off_t)((arg >> 1) % TABLE_SIZE);
	FUZZ_CHECK(truncate(table_path, size) == 0, "truncate");
	make_key(&key, (uint8_t)arg, (uint8_t)(arg >> 8));
	memset(&ctx, 0, sizeof(ctx));
	ctx.rec = model_get(&key);
	FUZZ_CHECK(portguard_shm_update(shm, &key, 1, true, update_cb, &ctx,
					&error) == -1 && !ctx.called,
		   "update on a resized file");
	FUZZ_CHECK(portguard_shm_lookup(shm, &key, &entry, &error) == -1,
		   "lookup on a resized file");
	FUZZ_CHECK(portguard_shm_flush(shm, &error) == -1,
		   "flush on a resized file");
	FUZZ_CHECK(portguard_shm_count(shm) == 0, "count on a resized file");
	portguard_shm_close(&shm);
	table_open(true);
	model_reset();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct portguard_rl_key key;
	uint32_t now;
	unsigned int ops = 0, i;

	init_once();
	do_flush();
	now = fuzz_u32(&in) >> 4;
	while (fuzz_left(&in) && ops++ < MAX_OPS) {
		uint8_t op = fuzz_u8(&in);
		uint8_t a = fuzz_u8(&in), b = fuzz_u8(&in);

		now += op >> 5;
		make_key(&key, a, b);
		switch (op % 16) {
		case 0: case 1: case 2: case 3: case 4:
			do_update(&key, now, true,
				  (enum cb_action)((a ^ b) % CB_ACTION_COUNT));
			break;
		case 5: case 6:
			do_update(&key, now, false,
				  (enum cb_action)((a ^ b) % CB_ACTION_COUNT));
			break;
		case 7: case 8: case 9:
			do_lookup(&key);
			break;
		case 10:
			do_count_iterate();
			break;
		case 11: {
			/* many keys at once: fills buckets, evicts */
			unsigned int n = 16 + (unsigned int)b * 4;

			for (i = 0; i < n; i++) {
				struct portguard_rl_key k;

				make_key(&k, (uint8_t)((a & 0xc0) |
						       ((i >> 8) & 0x3f)),
					 (uint8_t)i);
				do_update(&k, now + (i & 1), true,
					  (i % 3) ? CB_FAIL : CB_BAN);
			}
			do_count_iterate();
			break;
		}
		case 12:
			if (op & 0x10)
				do_flush();
			else
				reopen();
			break;
		case 13:
			if ((op & 0x30) == 0x30)
				damage_header(a, b);
			else
				do_lookup(&key);
			break;
		case 14:
			if ((op & 0x30) == 0x30)
				resize_underneath(fuzz_u32(&in));
			else
				do_lookup(&key);
			break;
		default: {
			/* a raw key with odd family/prefix */
			struct portguard_rl_key raw;

			memset(&raw, 0, sizeof(raw));
			raw.addr.family = a & 7;
			raw.prefix = b;
			raw.addr.bytes[0] = op;
			do_update(&raw, now, true, CB_FAIL);
			do_lookup(&raw);
			break;
		}
		}
	}
	do_count_iterate();
	return 0;
}

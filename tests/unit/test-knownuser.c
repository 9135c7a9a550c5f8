/* Unit tests for portguard-knownuser.c: table-driven scenarios with time
   injected (seconds after T0), plus the pseudo-key properties. */

#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "test-common.h"

#include "portguard-knownuser.h"
#include "portguard-shm.h"

#define T0 1700000000U
#define MIN 60U
#define DAY 86400U

enum known_op {
	OP_END = 0,
	OP_SUCCESS,
	/* expect = enum portguard_known_verdict */
	OP_FAIL,
	/* expect = portguard_known_is_known() */
	OP_KNOWN,
	/* expect = portguard_known_is_idle() */
	OP_IDLE,
};

struct known_step {
	uint32_t at;
	enum known_op op;
	unsigned int expect;
};

struct known_row {
	const char *label;
	struct portguard_known_config config;
	struct known_step steps[24];
};

#define ABS PORTGUARD_KNOWN_ABSORBED
#define OVER PORTGUARD_KNOWN_OVER_LIMIT
#define NO PORTGUARD_KNOWN_NO

static const struct known_row known_rows[] = {
	{ "never succeeded: not known, failures count against the key",
	  { 7 * DAY, 3, 10 * MIN }, {
		{ 0, OP_KNOWN, 0 }, { 0, OP_FAIL, NO }, { 1, OP_FAIL, NO },
		{ 1, OP_IDLE, 1 },
	} },
	{ "known user: its own limit absorbs failures, then over",
	  { 7 * DAY, 3, 10 * MIN }, {
		{ 0, OP_SUCCESS, 0 }, { 0, OP_KNOWN, 1 },
		{ 60, OP_FAIL, ABS }, { 61, OP_FAIL, ABS },
		{ 62, OP_FAIL, ABS }, { 63, OP_FAIL, OVER },
		{ 64, OP_FAIL, OVER }, { 64, OP_IDLE, 0 },
	} },
	{ "the window slides: old failures stop counting",
	  { 7 * DAY, 2, 10 * MIN }, {
		{ 0, OP_SUCCESS, 0 },
		{ 10, OP_FAIL, ABS }, { 20, OP_FAIL, ABS },
		{ 30, OP_FAIL, OVER },
		/* 10 + 600: the first failure left the window */
		{ 610, OP_FAIL, ABS }, { 611, OP_FAIL, OVER },
	} },
	{ "a new success forgets the user's failures",
	  { 7 * DAY, 2, 10 * MIN }, {
		{ 0, OP_SUCCESS, 0 },
		{ 10, OP_FAIL, ABS }, { 20, OP_FAIL, ABS },
		{ 30, OP_FAIL, OVER }, { 40, OP_SUCCESS, 0 },
		{ 50, OP_FAIL, ABS },
	} },
	{ "known for the period only",
	  { DAY, 3, 10 * MIN }, {
		{ 0, OP_SUCCESS, 0 }, { DAY - 1, OP_KNOWN, 1 },
		{ DAY - 1, OP_FAIL, ABS }, { DAY, OP_KNOWN, 0 },
		{ DAY, OP_FAIL, NO }, { DAY, OP_IDLE, 1 },
	} },
	{ "period 0: the mitigation is off",
	  { 0, 3, 10 * MIN }, {
		{ 0, OP_SUCCESS, 0 }, { 0, OP_KNOWN, 0 },
		{ 1, OP_FAIL, NO }, { 1, OP_IDLE, 1 },
	} },
	{ "clock went back: a success in the future is recent",
	  { DAY, 3, 10 * MIN }, {
		{ 100, OP_SUCCESS, 0 }, { 50, OP_KNOWN, 1 },
		{ 50, OP_FAIL, ABS },
	} },
	{ "limit 16: the whole ring",
	  { DAY, 16, 10 * MIN }, {
		{ 0, OP_SUCCESS, 0 },
		{ 1, OP_FAIL, ABS }, { 2, OP_FAIL, ABS }, { 3, OP_FAIL, ABS },
		{ 4, OP_FAIL, ABS }, { 5, OP_FAIL, ABS }, { 6, OP_FAIL, ABS },
		{ 7, OP_FAIL, ABS }, { 8, OP_FAIL, ABS }, { 9, OP_FAIL, ABS },
		{ 10, OP_FAIL, ABS }, { 11, OP_FAIL, ABS },
		{ 12, OP_FAIL, ABS }, { 13, OP_FAIL, ABS },
		{ 14, OP_FAIL, ABS }, { 15, OP_FAIL, ABS },
		{ 16, OP_FAIL, ABS }, { 17, OP_FAIL, OVER },
	} },
};

static void test_known_scenarios(void **state)
{
	unsigned int r, i;
	char label[256];

	(void)state;
	for (r = 0; r < N_ELEMENTS(known_rows); r++) {
		const struct known_row *row = &known_rows[r];
		struct portguard_rl_entry entry;

		memset(&entry, 0, sizeof(entry));
		for (i = 0; row->steps[i].op != OP_END; i++) {
			const struct known_step *st = &row->steps[i];
			uint32_t now = T0 + st->at;

			snprintf(label, sizeof(label), "%s (step %u)",
				 row->label, i);
			switch (st->op) {
			case OP_SUCCESS:
				portguard_known_success(&entry, now);
				break;
			case OP_FAIL:
				CHECK_INT(label, portguard_known_fail(
					&entry, &row->config, now),
					st->expect);
				break;
			case OP_KNOWN:
				CHECK_INT(label, portguard_known_is_known(
					&entry, &row->config, now),
					st->expect);
				break;
			case OP_IDLE:
				CHECK_INT(label, portguard_known_is_idle(
					&entry, &row->config, now),
					st->expect);
				break;
			case OP_END:
				break;
			}
		}
	}
}

static void make_key(struct portguard_rl_key *key, const char *ip)
{
	const char *error;

	assert_int_equal(portguard_rl_key_parse(ip, 32, 64, key, &error), 0);
}

static void test_known_key_make(void **state)
{
	struct portguard_rl_key a, b, ka, ka2, kb, kc, kd;
	char hex[33], hex2[33];
	char longname[2000];

	(void)state;
	make_key(&a, "192.0.2.7");
	make_key(&b, "192.0.2.8");
	portguard_known_key_make(&ka, &a, "alice@example.org", 17);
	portguard_known_key_make(&ka2, &a, "alice@example.org", 17);
	portguard_known_key_make(&kb, &b, "alice@example.org", 17);
	portguard_known_key_make(&kc, &a, "bob@example.org", 15);
	/* same bytes as "alice@example.org" without its last byte */
	portguard_known_key_make(&kd, &a, "alice@example.org", 16);

	assert_true(portguard_known_key_is(&ka));
	assert_false(portguard_known_key_is(&a));
	assert_true(portguard_rl_key_equals(&ka, &ka2));
	assert_false(portguard_rl_key_equals(&ka, &kb));
	assert_false(portguard_rl_key_equals(&ka, &kc));
	assert_false(portguard_rl_key_equals(&ka, &kd));
	/* the name is not in the key */
	assert_null(memmem(ka.addr.bytes, sizeof(ka.addr.bytes), "alice", 5));

	portguard_known_key_to_hex(&ka, hex, sizeof(hex));
	portguard_known_key_to_hex(&ka2, hex2, sizeof(hex2));
	assert_int_equal(strlen(hex), 32);
	assert_string_equal(hex, hex2);
	portguard_known_key_to_hex(&ka, hex, 10);
	assert_string_equal(hex, "");

	/* an over-long name is cut, not overflowed */
	memset(longname, 'x', sizeof(longname));
	portguard_known_key_make(&ka, &a, longname, sizeof(longname));
	portguard_known_key_make(&ka2, &a, longname, 1024);
	assert_true(portguard_rl_key_equals(&ka, &ka2));
}

static void test_known_config_check(void **state)
{
	static const struct {
		const char *label;
		struct portguard_known_config config;
		int ret;
	} rows[] = {
		{ "defaults", { 7 * DAY, 10, 600 }, 0 },
		{ "off ignores the limit", { 0, 0, 600 }, 0 },
		{ "limit 0", { DAY, 0, 600 }, -1 },
		{ "limit 17", { DAY, 17, 600 }, -1 },
		{ "limit 16", { DAY, 16, 600 }, 0 },
	};
	const char *error;
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(rows); i++) {
		error = NULL;
		CHECK_INT(rows[i].label,
			  portguard_known_config_check(&rows[i].config,
						       &error), rows[i].ret);
		if (rows[i].ret < 0)
			CHECK_STR(rows[i].label, error,
				  "portguard_known_user_fail_limit: must be 1..16");
	}
}

static bool mark_success(struct portguard_rl_entry *entry,
			 bool created, void *context)
{
	(void)created;
	portguard_known_success(entry, *(const uint32_t *)context);
	return true;
}

static const char *lock_path_of(const char *path)
{
	static char lock[64];

	(void)snprintf(lock, sizeof(lock), "%s.lock", path);
	return lock;
}

/* Known-user entries live in the shared table next to address keys and
   survive its repair pass (opening an existing file). */
static void test_known_in_shm(void **state)
{
	char path[] = "/tmp/portguard-test-known-XXXXXX";
	struct portguard_shm *shm;
	struct portguard_rl_key addr, known;
	struct portguard_rl_entry entry;
	const char *warning, *error;
	uint32_t now = T0;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	assert_int_equal(portguard_shm_open(path, 1024 * 1024, 0600, &shm,
					    &warning, &error), 0);
	make_key(&addr, "198.51.100.1");
	portguard_known_key_make(&known, &addr, "carol", 5);
	assert_int_equal(portguard_shm_update(shm, &known, T0, true,
					      mark_success, &now, &error), 1);
	portguard_shm_close(&shm);

	assert_int_equal(portguard_shm_open(path, 1024 * 1024, 0600, &shm,
					    &warning, &error), 0);
	memset(&entry, 0, sizeof(entry));
	assert_int_equal(portguard_shm_lookup(shm, &known, &entry, &error), 1);
	assert_int_equal(entry.last_ban_start, T0);
	portguard_shm_close(&shm);
	unlink(path);
	/* the file was created: portguard_shm_open() left its lock file */
	unlink(lock_path_of(path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_scenarios),
		cmocka_unit_test(test_known_key_make),
		cmocka_unit_test(test_known_config_check),
		cmocka_unit_test(test_known_in_shm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

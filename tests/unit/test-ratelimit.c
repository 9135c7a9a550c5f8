/* Unit tests for portguard-ratelimit.c. Time is injected: every step of a
   scenario says at which second (after T0) it happens. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "test-common.h"

#include "portguard-ratelimit.h"

/* an arbitrary "now" far from 0 and from the 32-bit end */
#define T0 1700000000U

#define MIN 60U
#define HOUR 3600U
#define DAY 86400U

/* ---- scenarios ---- */

enum rl_op {
	OP_END = 0,
	/* portguard_rl_fail(); expect = ban length, 0 = only counted */
	OP_FAIL,
	OP_SUCCESS,
	/* portguard_rl_ban(arg secs); expect = returned length */
	OP_BAN,
	OP_UNBAN,
	/* expect = seconds of ban left (0 = not banned) */
	OP_REMAINING,
	/* expect = entry ban_level */
	OP_LEVEL,
	/* expect = portguard_rl_failures() */
	OP_FAILURES,
	/* expect = portguard_rl_is_idle() */
	OP_IDLE,
	/* expect = PORTGUARD_RL_FLAG_MANUAL set */
	OP_MANUAL,
	/* pretend a ban of level arg ended exactly now */
	OP_SET_LEVEL,
};

struct rl_step {
	uint32_t at; /* seconds after T0 */
	enum rl_op op;
	unsigned int arg;
	unsigned int expect;
};

#define RL_MAX_STEPS 24

struct rl_row {
	const char *label;
	struct portguard_rl_config config;
	struct rl_step steps[RL_MAX_STEPS];
};

/* limit 3 in 10 minutes, bans 15 min doubling up to 4 h */
#define CONF_STD { 3, 10 * MIN, 15 * MIN, 4 * HOUR }
/* every failure bans: for the back-off arithmetic */
#define CONF_ONE(dur, max) { 1, 10 * MIN, (dur), (max) }

#define FAIL(at, ban) { (at), OP_FAIL, 0, (ban) }
#define FAIL3(at, ban) FAIL(at, 0), FAIL(at, 0), FAIL(at, ban)
#define SUCCESS(at) { (at), OP_SUCCESS, 0, 0 }
#define BAN(at, secs, len) { (at), OP_BAN, (secs), (len) }
#define UNBAN(at) { (at), OP_UNBAN, 0, 0 }
#define REMAINING(at, secs) { (at), OP_REMAINING, 0, (secs) }
#define LEVEL(level) { 0, OP_LEVEL, 0, (level) }
#define FAILURES(at, n) { (at), OP_FAILURES, 0, (n) }
#define IDLE(at, yes) { (at), OP_IDLE, 0, (yes) }
#define MANUAL(yes) { 0, OP_MANUAL, 0, (yes) }
#define SET_LEVEL(at, level) { (at), OP_SET_LEVEL, (level), 0 }

static const struct rl_row rl_rows[] = {
	{ "window: limit-1 failures, then one at window-1 bans", CONF_STD, {
		FAIL(0, 0), FAIL(0, 0), FAIL(10 * MIN - 1, 15 * MIN),
		REMAINING(10 * MIN - 1, 15 * MIN), LEVEL(1), MANUAL(0),
		REMAINING(25 * MIN - 2, 1), REMAINING(25 * MIN - 1, 0),
	} },
	{ "window: one at exactly window later does not ban", CONF_STD, {
		FAIL(0, 0), FAIL(0, 0), FAIL(10 * MIN, 0),
		FAILURES(10 * MIN, 1), REMAINING(10 * MIN, 0), LEVEL(0),
	} },
	{ "window slides: the oldest failure drops out", CONF_STD, {
		FAIL(0, 0), FAIL(5 * MIN, 0), FAIL(10 * MIN, 0),
		FAILURES(10 * MIN, 2), FAIL(15 * MIN - 1, 15 * MIN),
	} },
	{ "failures counted per window", CONF_STD, {
		FAILURES(0, 0), FAIL(0, 0), FAIL(60, 0), FAILURES(60, 2),
		FAILURES(10 * MIN - 1, 2), FAILURES(10 * MIN, 1),
		FAILURES(11 * MIN, 0),
	} },
	{ "limit 1: the first failure bans", CONF_ONE(15 * MIN, 4 * HOUR), {
		FAIL(0, 15 * MIN), LEVEL(1),
	} },
	{ "doubling 15m 30m 60m 2h 4h, then the cap",
	  CONF_ONE(15 * MIN, 4 * HOUR), {
		FAIL(0, 15 * MIN), LEVEL(1),
		FAIL(15 * MIN, 30 * MIN), LEVEL(2),
		FAIL(45 * MIN, 60 * MIN), LEVEL(3),
		FAIL(105 * MIN, 2 * HOUR), LEVEL(4),
		FAIL(225 * MIN, 4 * HOUR), LEVEL(5),
		FAIL(465 * MIN, 4 * HOUR), LEVEL(6),
		REMAINING(465 * MIN, 4 * HOUR),
	} },
	{ "cap below the next doubling", CONF_ONE(15 * MIN, 50 * MIN), {
		FAIL(0, 15 * MIN), FAIL(15 * MIN, 30 * MIN),
		FAIL(45 * MIN, 50 * MIN), FAIL(95 * MIN, 50 * MIN),
		LEVEL(4),
	} },
	{ "max == duration: never grows", CONF_ONE(HOUR, HOUR), {
		FAIL(0, HOUR), FAIL(HOUR, HOUR), FAIL(2 * HOUR, HOUR),
		LEVEL(3),
	} },
	{ "decay: max-1 after the end of the last ban still doubles",
	  CONF_ONE(15 * MIN, HOUR), {
		FAIL(0, 15 * MIN), FAIL(15 * MIN, 30 * MIN),
		/* the ban ended at 45 min */
		FAIL(45 * MIN + HOUR - 1, HOUR), LEVEL(3),
	} },
	{ "decay: max after the end of the last ban is a first ban again",
	  CONF_ONE(15 * MIN, HOUR), {
		FAIL(0, 15 * MIN), FAIL(15 * MIN, 30 * MIN),
		FAIL(45 * MIN + HOUR, 15 * MIN), LEVEL(1),
	} },
	{ "decay counts from the end of the ban, not its start",
	  CONF_ONE(15 * MIN, 4 * HOUR), {
		FAIL(0, 15 * MIN), FAIL(15 * MIN, 30 * MIN),
		/* 4 h after the start of the 2nd ban, 3.5 h after its end */
		FAIL(15 * MIN + 4 * HOUR, 60 * MIN), LEVEL(3),
	} },
	{ "success forgets the failures", CONF_STD, {
		FAIL(0, 0), FAIL(0, 0), SUCCESS(10), FAILURES(10, 0),
		FAIL(20, 0), FAIL(20, 0), FAILURES(20, 2),
		FAIL(20, 15 * MIN), LEVEL(1),
	} },
	{ "success keeps the ban history", CONF_STD, {
		FAIL3(0, 15 * MIN), SUCCESS(20 * MIN), LEVEL(1),
		FAIL3(20 * MIN, 30 * MIN), LEVEL(2),
	} },
	{ "success does not lift a ban", CONF_STD, {
		FAIL3(0, 15 * MIN), SUCCESS(60), REMAINING(60, 14 * MIN),
	} },
	{ "failures while banned are counted but never extend",
	  CONF_STD, {
		FAIL3(0, 15 * MIN), FAIL(60, 0), FAIL(120, 0),
		FAIL(180, 0), FAIL(240, 0), FAILURES(240, 3),
		REMAINING(240, 11 * MIN), LEVEL(1),
		REMAINING(15 * MIN, 0),
	} },
	{ "failures at the end of a ban lead to the next one", CONF_STD, {
		FAIL3(0, 15 * MIN), FAIL(14 * MIN, 0), FAIL(15 * MIN - 1, 0),
		FAIL(15 * MIN, 30 * MIN), LEVEL(2),
	} },
	{ "ban uses up the failures", CONF_STD, {
		FAIL3(0, 15 * MIN), FAILURES(0, 0), FAIL(15 * MIN, 0),
		FAILURES(15 * MIN, 1),
	} },
	{ "manual ban: default length is the next automatic one",
	  CONF_STD, {
		BAN(0, 0, 15 * MIN), MANUAL(1), LEVEL(1),
		REMAINING(0, 15 * MIN), UNBAN(60), REMAINING(60, 0),
		MANUAL(0), LEVEL(1),
		/* the history decays from the unban */
		FAIL3(120, 30 * MIN), LEVEL(2),
		BAN(35 * MIN, 0, 60 * MIN), LEVEL(3),
	} },
	{ "manual ban with explicit length", CONF_STD, {
		BAN(0, DAY, DAY), MANUAL(1), REMAINING(1, DAY - 1),
		FAIL3(2, 0), REMAINING(2, DAY - 2), UNBAN(10),
		REMAINING(10, 0), FAILURES(10, 0), MANUAL(0),
	} },
	{ "manual ban replaces the end of the ban in force", CONF_STD, {
		FAIL3(0, 15 * MIN), BAN(60, 30, 30), REMAINING(60, 30),
		LEVEL(1), MANUAL(1), REMAINING(90, 0),
	} },
	{ "automatic ban clears the manual flag", CONF_STD, {
		BAN(0, 60, 60), MANUAL(1), FAIL3(120, 30 * MIN), MANUAL(0),
	} },
	{ "unban forgets failures, not history", CONF_STD, {
		FAIL3(0, 15 * MIN), FAIL(60, 0), UNBAN(120),
		FAILURES(120, 0), REMAINING(120, 0), LEVEL(1),
		FAIL3(180, 30 * MIN),
	} },
	{ "unban of an expired ban keeps its end", CONF_ONE(15 * MIN, HOUR), {
		FAIL(0, 15 * MIN), UNBAN(HOUR),
		/* the ban ended at 15 min: decayed at 75 min */
		FAIL(75 * MIN, 15 * MIN), LEVEL(1),
	} },
	{ "idle: fresh, failures, window", CONF_STD, {
		IDLE(0, 1), FAIL(0, 0), IDLE(0, 0), IDLE(10 * MIN - 1, 0),
		IDLE(10 * MIN, 1),
	} },
	{ "idle: banned, then history, then decayed", CONF_STD, {
		FAIL3(0, 15 * MIN), IDLE(0, 0), IDLE(15 * MIN - 1, 0),
		IDLE(15 * MIN, 0), IDLE(15 * MIN + 4 * HOUR - 1, 0),
		IDLE(15 * MIN + 4 * HOUR, 1),
	} },
	{ "level overflow: shift of 40 is the cap", CONF_ONE(15 * MIN, DAY), {
		SET_LEVEL(1000, 40), FAIL(1000, DAY), LEVEL(41),
		SET_LEVEL(100000, 255), FAIL(100000, DAY), LEVEL(255),
	} },
	{ "length overflow: 2^31 << 1 is the cap",
	  CONF_ONE(0x80000000U, 0xffffffffU), {
		FAIL(0, 0x80000000U), REMAINING(0, 0x80000000U),
		SET_LEVEL(10, 1), FAIL(10, 0xffffffffU),
		/* the end saturates at the last 32-bit second */
		REMAINING(10, 0xffffffffU - T0 - 10),
	} },
	{ "clock going back: a future failure is recent", CONF_STD, {
		FAIL(100, 0), FAIL(50, 0), FAILURES(50, 2), FAIL(40, 15 * MIN),
	} },
};

static void rl_run_step(const char *label, unsigned int n,
			const struct portguard_rl_config *config,
			struct portguard_rl_entry *entry,
			const struct rl_step *step)
{
	uint32_t now = T0 + step->at;
	enum portguard_rl_verdict verdict;
	unsigned int secs = 12345, remaining = 12345;
	char steplabel[256];
	bool banned;

	(void)snprintf(steplabel, sizeof(steplabel), "%s, step %u", label,
		       n + 1);
	switch (step->op) {
	case OP_END:
		break;
	case OP_FAIL:
		verdict = portguard_rl_fail(entry, config, now, &secs);
		CHECK_INT(steplabel, verdict, step->expect == 0 ?
			  PORTGUARD_RL_COUNTED : PORTGUARD_RL_BANNED);
		CHECK_INT(steplabel, secs, step->expect);
		break;
	case OP_SUCCESS:
		portguard_rl_success(entry, now);
		break;
	case OP_BAN:
		CHECK_INT(steplabel,
			  portguard_rl_ban(entry, config, now, step->arg),
			  step->expect);
		break;
	case OP_UNBAN:
		portguard_rl_unban(entry, now);
		break;
	case OP_REMAINING:
		banned = portguard_rl_is_banned(entry, now, &remaining);
		CHECK_INT(steplabel, banned, step->expect > 0);
		CHECK_INT(steplabel, remaining, step->expect);
		break;
	case OP_LEVEL:
		CHECK_INT(steplabel, entry->ban_level, step->expect);
		break;
	case OP_FAILURES:
		CHECK_INT(steplabel, portguard_rl_failures(entry, config, now),
			  step->expect);
		break;
	case OP_IDLE:
		CHECK_INT(steplabel, portguard_rl_is_idle(entry, config, now),
			  step->expect);
		break;
	case OP_MANUAL:
		CHECK_INT(steplabel,
			  (entry->flags & PORTGUARD_RL_FLAG_MANUAL) != 0,
			  step->expect);
		break;
	case OP_SET_LEVEL:
		entry->ban_level = (uint8_t)step->arg;
		entry->last_ban_start = now - 1;
		entry->ban_until = now;
		break;
	}
}

static void test_rl_scenarios(void **state)
{
	unsigned int i, j;

	(void)state;
	for (i = 0; i < N_ELEMENTS(rl_rows); i++) {
		const struct rl_row *row = &rl_rows[i];
		struct portguard_rl_entry entry;
		const char *error;

		CHECK_INT(row->label,
			  portguard_rl_config_check(&row->config, &error), 0);
		memset(&entry, 0, sizeof(entry));
		for (j = 0; j < RL_MAX_STEPS && row->steps[j].op != OP_END;
		     j++)
			rl_run_step(row->label, j, &row->config, &entry,
				    &row->steps[j]);
	}
}

/* The ring holds fail_limit failures however often it wraps around. */
static void test_rl_ring_wraps(void **state)
{
	static const unsigned int limits[] = { 1, 2, 3, 7, 15, 16 };
	unsigned int i, j, secs;

	(void)state;
	for (i = 0; i < N_ELEMENTS(limits); i++) {
		struct portguard_rl_config config = {
			limits[i], 100, 900, 3600
		};
		struct portguard_rl_entry entry;
		char label[64];
		uint32_t now = T0;

		(void)snprintf(label, sizeof(label), "limit %u", limits[i]);
		memset(&entry, 0, sizeof(entry));
		/* spread out: never limit failures within 100 s */
		for (j = 0; j < 3 * PORTGUARD_RL_MAX_LIMIT + 5 &&
		     limits[i] > 1; j++) {
			now += 100 / (limits[i] - 1) + 1;
			CHECK_INT(label, portguard_rl_fail(&entry, &config,
							   now, &secs),
				  PORTGUARD_RL_COUNTED);
			if (entry.fail_count > limits[i])
				fail_msg("%s: %u failures kept", label,
					 entry.fail_count);
		}
		/* then limit failures at once */
		now += 1000;
		for (j = 1; j < limits[i]; j++) {
			CHECK_INT(label, portguard_rl_fail(&entry, &config,
							   now, &secs),
				  PORTGUARD_RL_COUNTED);
			CHECK_INT(label,
				  portguard_rl_failures(&entry, &config, now),
				  j);
		}
		CHECK_INT(label, portguard_rl_fail(&entry, &config, now,
						   &secs),
			  PORTGUARD_RL_BANNED);
		CHECK_INT(label, secs, 900);
	}
}

/* fail_limit lowered by a reload while entries hold more failures */
static void test_rl_limit_lowered(void **state)
{
	struct portguard_rl_config config = { 5, 600, 900, 3600 };
	struct portguard_rl_entry entry;
	unsigned int secs, i;

	(void)state;
	memset(&entry, 0, sizeof(entry));
	for (i = 0; i < 4; i++) {
		assert_int_equal(portguard_rl_fail(&entry, &config, T0 + i,
						   &secs),
				 PORTGUARD_RL_COUNTED);
	}
	config.fail_limit = 2;
	assert_int_equal(portguard_rl_failures(&entry, &config, T0 + 4), 2);
	assert_int_equal(portguard_rl_fail(&entry, &config, T0 + 4, &secs),
			 PORTGUARD_RL_BANNED);
	assert_int_equal(secs, 900);
}

/* an entry a killed process left with nonsense counters */
static void test_rl_damaged_entry(void **state)
{
	struct portguard_rl_config config = { 3, 600, 900, 3600 };
	struct portguard_rl_entry entry;
	unsigned int secs;

	(void)state;
	memset(&entry, 0, sizeof(entry));
	entry.fail_count = 200;
	entry.fail_head = 250;
	(void)portguard_rl_failures(&entry, &config, T0);
	(void)portguard_rl_is_idle(&entry, &config, T0);
	assert_int_equal(portguard_rl_fail(&entry, &config, T0 + 1000, &secs),
			 PORTGUARD_RL_COUNTED);
	assert_int_equal(portguard_rl_failures(&entry, &config, T0 + 1000), 1);
}

/* ---- config ---- */

struct config_row {
	const char *label;
	struct portguard_rl_config config;
	const char *error; /* NULL = valid */
};

static const struct config_row config_rows[] = {
	{ "defaults", { 5, 600, 900, 86400 }, NULL },
	{ "limit 1", { 1, 1, 1, 1 }, NULL },
	{ "limit 16", { 16, 600, 900, 900 }, NULL },
	{ "limit 0", { 0, 600, 900, 86400 },
	  "portguard_auth_fail_limit: must be 1..16" },
	{ "limit 17", { 17, 600, 900, 86400 },
	  "portguard_auth_fail_limit: must be 1..16" },
	{ "limit 20 (the old maximum)", { 20, 600, 900, 86400 },
	  "portguard_auth_fail_limit: must be 1..16" },
	{ "window 0", { 5, 0, 900, 86400 },
	  "portguard_auth_fail_window: must be > 0" },
	{ "duration 0", { 5, 600, 0, 86400 },
	  "portguard_ban_duration: must be > 0" },
	{ "max below duration", { 5, 600, 900, 899 },
	  "portguard_ban_duration_max: must be >= portguard_ban_duration "
	  "(900)" },
	{ "max 0", { 5, 600, 900, 0 },
	  "portguard_ban_duration_max: must be >= portguard_ban_duration "
	  "(900)" },
};

static void test_rl_config_check(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(config_rows); i++) {
		const struct config_row *row = &config_rows[i];
		const char *error = NULL;
		int ret;

		ret = portguard_rl_config_check(&row->config, &error);
		CHECK_INT(row->label, ret, row->error == NULL ? 0 : -1);
		if (row->error != NULL)
			CHECK_STR(row->label, error, row->error);
	}
}

/* ---- keys ---- */

struct key_make_row {
	const char *label;
	const char *addr;
	unsigned int ipv4_prefix, ipv6_prefix;
	const char *text;
};

static const struct key_make_row key_make_rows[] = {
	{ "ipv4 host", "192.0.2.7", 32, 64, "192.0.2.7" },
	{ "ipv4 /24", "192.0.2.7", 24, 64, "192.0.2.0/24" },
	{ "ipv4 /0", "192.0.2.7", 0, 64, "0.0.0.0/0" },
	{ "ipv4 prefix clamped", "192.0.2.7", 40, 64, "192.0.2.7" },
	{ "ipv6 /64", "2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64" },
	{ "ipv6 /56", "2001:db8:1:2ff:3:4:5:6", 32, 56,
	  "2001:db8:1:200::/56" },
	{ "ipv6 host", "2001:db8::1", 32, 128, "2001:db8::1" },
	{ "ipv6 prefix clamped", "2001:db8::1", 32, 200, "2001:db8::1" },
	{ "ipv6 /0", "2001:db8::1", 32, 0, "::/0" },
	{ "v4-mapped is ipv4", "::ffff:192.0.2.7", 32, 64, "192.0.2.7" },
	{ "v4-mapped uses the ipv4 prefix", "::ffff:192.0.2.7", 24, 64,
	  "192.0.2.0/24" },
};

static void test_rl_key_make(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(key_make_rows); i++) {
		const struct key_make_row *row = &key_make_rows[i];
		struct portguard_rl_key key;
		struct portguard_addr addr;
		char buf[64];

		CHECK_INT(row->label, portguard_addr_parse(row->addr, &addr),
			  0);
		memset(&key, 0xaa, sizeof(key));
		portguard_rl_key_make(&key, &addr, row->ipv4_prefix,
				      row->ipv6_prefix);
		CHECK_STR(row->label,
			  portguard_rl_key_to_str(&key, buf, sizeof(buf)),
			  row->text);
	}
}

struct key_same_row {
	const char *label;
	const char *a, *b;
	unsigned int ipv4_prefix, ipv6_prefix;
	bool equal;
};

static const struct key_same_row key_same_rows[] = {
	{ "two addresses in one /64", "2001:db8:1:2::1",
	  "2001:db8:1:2:ffff:ffff:ffff:fffe", 32, 64, true },
	{ "the next /64", "2001:db8:1:2::1", "2001:db8:1:3::1", 32, 64,
	  false },
	{ "the previous /64", "2001:db8:1:2::1",
	  "2001:db8:1:1:ffff:ffff:ffff:ffff", 32, 64, false },
	{ "ipv6 hosts at /128", "2001:db8::1", "2001:db8::2", 32, 128, false },
	{ "v4-mapped and ipv4", "::ffff:192.0.2.7", "192.0.2.7", 32, 64,
	  true },
	{ "ipv4 hosts", "192.0.2.7", "192.0.2.8", 32, 64, false },
	{ "ipv4 in one /24", "192.0.2.7", "192.0.2.200", 24, 64, true },
	{ "ipv4 and ipv6 with the same bytes", "192.0.2.7",
	  "c000:207::", 32, 32, false },
};

static void test_rl_key_equals(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(key_same_rows); i++) {
		const struct key_same_row *row = &key_same_rows[i];
		struct portguard_rl_key a, b;
		struct portguard_addr addr;

		CHECK_INT(row->label, portguard_addr_parse(row->a, &addr), 0);
		portguard_rl_key_make(&a, &addr, row->ipv4_prefix,
				      row->ipv6_prefix);
		CHECK_INT(row->label, portguard_addr_parse(row->b, &addr), 0);
		portguard_rl_key_make(&b, &addr, row->ipv4_prefix,
				      row->ipv6_prefix);
		CHECK_INT(row->label, portguard_rl_key_equals(&a, &b),
			  row->equal);
		CHECK_INT(row->label, portguard_rl_key_equals(&b, &a),
			  row->equal);
		CHECK_INT(row->label, portguard_rl_key_equals(&a, &a), true);
	}
}

/* an address struct built by hand, not normalized by the parser */
static void test_rl_key_make_raw_mapped(void **state)
{
	struct portguard_addr mapped, v4;
	struct portguard_rl_key a, b;
	char buf[64];

	(void)state;
	memset(&mapped, 0, sizeof(mapped));
	mapped.family = 6;
	mapped.bytes[10] = 0xff;
	mapped.bytes[11] = 0xff;
	mapped.bytes[12] = 198;
	mapped.bytes[13] = 51;
	mapped.bytes[14] = 100;
	mapped.bytes[15] = 9;
	assert_int_equal(portguard_addr_parse("198.51.100.9", &v4), 0);
	portguard_rl_key_make(&a, &mapped, 32, 64);
	portguard_rl_key_make(&b, &v4, 32, 64);
	assert_true(portguard_rl_key_equals(&a, &b));
	assert_string_equal(portguard_rl_key_to_str(&a, buf, sizeof(buf)),
			    "198.51.100.9");
}

struct key_parse_row {
	const char *label;
	const char *input;
	unsigned int ipv4_prefix, ipv6_prefix;
	int ret;
	const char *text; /* to_str of the key, or the error */
};

static const struct key_parse_row key_parse_rows[] = {
	{ "bare ipv4", "192.0.2.7", 32, 64, 0, "192.0.2.7" },
	{ "bare ipv4, default /24", "192.0.2.7", 24, 64, 0, "192.0.2.0/24" },
	{ "bare ipv6, default /64", "2001:db8::1", 32, 64, 0,
	  "2001:db8::/64" },
	{ "bare ipv6, default /128", "2001:db8::1", 32, 128, 0,
	  "2001:db8::1" },
	{ "explicit /128", "2001:db8::1/128", 32, 64, 0, "2001:db8::1" },
	{ "explicit /32 ipv4", "192.0.2.7/32", 24, 64, 0, "192.0.2.7" },
	{ "explicit /48 clears host bits", "2001:db8:1:2::1/48", 32, 64, 0,
	  "2001:db8:1::/48" },
	{ "explicit ipv4 /16", "10.1.2.3/16", 32, 64, 0, "10.1.0.0/16" },
	{ "explicit /0", "10.1.2.3/0", 32, 64, 0, "0.0.0.0/0" },
	{ "mapped network", "::ffff:192.0.2.0/120", 32, 64, 0,
	  "192.0.2.0/24" },
	{ "mapped bare", "::ffff:192.0.2.7", 32, 64, 0, "192.0.2.7" },
	{ "empty", "", 32, 64, -1, "invalid address or network ''" },
	{ "NULL", NULL, 32, 64, -1, "invalid address or network ''" },
	{ "hostname", "nonsense", 32, 64, -1,
	  "invalid address or network 'nonsense'" },
	{ "ipv4 /33", "192.0.2.7/33", 32, 64, -1,
	  "invalid address or network '192.0.2.7/33'" },
	{ "ipv6 /129", "2001:db8::/129", 32, 64, -1,
	  "invalid address or network '2001:db8::/129'" },
	{ "empty prefix", "1.2.3.4/", 32, 64, -1,
	  "invalid address or network '1.2.3.4/'" },
	{ "two slashes", "1.2.3.4/8/8", 32, 64, -1,
	  "invalid address or network '1.2.3.4/8/8'" },
};

static void test_rl_key_parse(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(key_parse_rows); i++) {
		const struct key_parse_row *row = &key_parse_rows[i];
		struct portguard_rl_key key, key2;
		const char *error = NULL;
		char buf[64];
		int ret;

		ret = portguard_rl_key_parse(row->input, row->ipv4_prefix,
					     row->ipv6_prefix, &key, &error);
		CHECK_INT(row->label, ret, row->ret);
		if (ret < 0) {
			CHECK_STR(row->label, error, row->text);
			continue;
		}
		CHECK_STR(row->label,
			  portguard_rl_key_to_str(&key, buf, sizeof(buf)),
			  row->text);
		/* round trip with the same default prefixes; a host key
		   prints as a bare address, which takes the default prefix
		   back, so an explicit /32 under a /24 default (or /128
		   under /64) does not come back as itself */
		CHECK_INT(row->label,
			  portguard_rl_key_parse(buf, row->ipv4_prefix,
						 row->ipv6_prefix, &key2,
						 &error), 0);
		CHECK_INT(row->label, portguard_rl_key_equals(&key, &key2),
			  strchr(buf, '/') != NULL ||
			  (key.addr.family == 4 ? row->ipv4_prefix == 32 :
			   row->ipv6_prefix == 128));
		/* text with a prefix means the same whatever the defaults */
		if (strchr(buf, '/') != NULL) {
			CHECK_INT(row->label,
				  portguard_rl_key_parse(buf, 7, 99, &key2,
							 &error), 0);
			CHECK_INT(row->label,
				  portguard_rl_key_equals(&key, &key2), true);
		}
	}
}

static void test_rl_key_to_str_small(void **state)
{
	struct portguard_rl_key key;
	const char *error;
	char buf[64];

	(void)state;
	assert_int_equal(portguard_rl_key_parse(
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127", 32, 64, &key,
		&error), 0);
	/* the longest key fits into 64 bytes */
	assert_string_equal(portguard_rl_key_to_str(&key, buf, sizeof(buf)),
			    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
	assert_int_equal(portguard_rl_key_parse("192.0.2.0/24", 32, 64, &key,
						&error), 0);
	/* never a truncated key */
	assert_string_equal(portguard_rl_key_to_str(&key, buf, 12), "");
	assert_string_equal(portguard_rl_key_to_str(&key, buf, 13),
			    "192.0.2.0/24");
}

/* ---- dict-backend helpers ---- */

static void test_rl_window_estimate(void **state)
{
	static const struct {
		const char *label;
		unsigned int cur, prev;
		uint32_t now;
		unsigned int window, expect;
	} rows[] = {
		{ "start of window: all of prev counts", 2, 4, 6000, 600, 6 },
		{ "half way: half of prev", 1, 4, 6300, 600, 3 },
		{ "last second: 1/600 of prev", 3, 599, 6599, 600, 4 },
		{ "no prev", 5, 0, 6123, 600, 5 },
		{ "rounds up", 0, 3, 6450, 600, 1 },
		{ "just after a boundary: prev in full", 1, 4, 6001, 600, 5 },
		{ "window 0 is cur", 7, 9, 1, 0, 7 },
		{ "huge counters saturate", UINT_MAX, UINT_MAX, 600, 600,
		  UINT_MAX },
	};
	unsigned int i, got;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		got = portguard_rl_window_estimate(rows[i].cur, rows[i].prev,
						   rows[i].now,
						   rows[i].window);
		if (got != rows[i].expect)
			fail_msg("%s: got %u, want %u", rows[i].label, got,
				 rows[i].expect);
	}
}

static void test_rl_auto_ban(void **state)
{
	const struct portguard_rl_config config = {
		.fail_limit = 5, .fail_window = 600,
		.ban_duration = 900, .ban_duration_max = 86400,
	};
	struct portguard_rl_entry entry;
	unsigned int secs;

	(void)state;
	memset(&entry, 0, sizeof(entry));
	secs = portguard_rl_auto_ban(&entry, &config, 1000);
	assert_int_equal(secs, 900);
	assert_int_equal(entry.ban_level, 1);
	assert_int_equal(entry.ban_until, 1900);
	/* a repeat ban after the first ended doubles */
	secs = portguard_rl_auto_ban(&entry, &config, 2000);
	assert_int_equal(secs, 1800);
	assert_int_equal(entry.ban_level, 2);
	/* decayed: a day after the end of the last ban, a first ban again */
	secs = portguard_rl_auto_ban(&entry, &config, 3800 + 86400);
	assert_int_equal(secs, 900);
	assert_int_equal(entry.ban_level, 1);
	assert_int_equal(entry.flags & PORTGUARD_RL_FLAG_MANUAL, 0);
}

static void test_rl_history_codec(void **state)
{
	static const struct {
		const char *label;
		const char *text;
		int ret;
		uint32_t ban_until, last_ban_start;
		unsigned int level, flags;
	} rows[] = {
		{ "typical", "v1 1900 1000 1 0", 0, 1900, 1000, 1, 0 },
		{ "manual flag", "v1 5 4 3 1", 0, 5, 4, 3, 1 },
		{ "max values", "v1 4294967295 4294967295 255 255", 0,
		  UINT32_MAX, UINT32_MAX, 255, 255 },
		{ "level too big", "v1 1 1 256 0", -1, 0, 0, 0, 0 },
		{ "u32 overflow", "v1 4294967296 1 1 0", -1, 0, 0, 0, 0 },
		{ "missing field", "v1 1 2 3", -1, 0, 0, 0, 0 },
		{ "trailing junk", "v1 1 2 3 4 5", -1, 0, 0, 0, 0 },
		{ "wrong version", "v2 1 2 3 4", -1, 0, 0, 0, 0 },
		{ "negative", "v1 -1 2 3 4", -1, 0, 0, 0, 0 },
		{ "double space", "v1  1 2 3 4", -1, 0, 0, 0, 0 },
		{ "empty", "", -1, 0, 0, 0, 0 },
	};
	struct portguard_rl_entry entry;
	char buf[64];
	unsigned int i;
	int ret;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ret = portguard_rl_history_parse(rows[i].text, &entry);
		if (ret != rows[i].ret)
			fail_msg("%s: ret %d, want %d", rows[i].label, ret,
				 rows[i].ret);
		if (ret < 0)
			continue;
		if (entry.ban_until != rows[i].ban_until ||
		    entry.last_ban_start != rows[i].last_ban_start ||
		    entry.ban_level != rows[i].level ||
		    entry.flags != rows[i].flags ||
		    entry.fail_count != 0)
			fail_msg("%s: wrong values", rows[i].label);
		/* round trip */
		portguard_rl_history_to_str(&entry, buf, sizeof(buf));
		if (strcmp(buf, rows[i].text) != 0)
			fail_msg("%s: round trip gave '%s'", rows[i].label,
				 buf);
	}
}

static void test_rl_attempt_undo_refund(void **state)
{
	const struct portguard_rl_config config = {
		.fail_limit = 5, .fail_window = 600,
		.ban_duration = 900, .ban_duration_max = 86400,
	};
	static const struct {
		const char *label;
		unsigned int before; /* failures counted before the attempt */
		bool success; /* outcome: success (undo) or refund */
		unsigned int expect_failures;
		bool expect_banned;
	} rows[] = {
		{ "4 failures, crossing attempt succeeds: no ban", 4, true,
		  0, false },
		{ "4 failures, crossing attempt refunded: no ban", 4, false,
		  0, false },
		{ "2 failures, attempt refunded: 2 left", 2, false, 2, false },
		{ "2 failures, attempt succeeds: 0 left", 2, true, 0, false },
		{ "0 failures, attempt refunded: 0 left", 0, false, 0, false },
	};
	struct portguard_rl_entry entry;
	struct portguard_rl_snapshot snap;
	unsigned int i, j, secs;
	uint32_t now = 10000;

	(void)state;
	for (i = 0; i < N_ELEMENTS(rows); i++) {
		memset(&entry, 0, sizeof(entry));
		for (j = 0; j < rows[i].before; j++)
			(void)portguard_rl_fail(&entry, &config, now - 10 + j,
						&secs);
		portguard_rl_snapshot_take(&entry, &snap);
		(void)portguard_rl_fail(&entry, &config, now, &secs);
		portguard_rl_undo_ban(&entry, &snap, now);
		if (rows[i].success)
			portguard_rl_success(&entry, now);
		else
			portguard_rl_refund(&entry, now);
		CHECK_INT(rows[i].label,
			  portguard_rl_failures(&entry, &config, now),
			  rows[i].expect_failures);
		CHECK_INT(rows[i].label,
			  portguard_rl_is_banned(&entry, now, NULL),
			  rows[i].expect_banned);
		CHECK_INT(rows[i].label, entry.ban_level, 0);
	}

	/* a crossing attempt that fails keeps its ban; undo of another
	   ban start does nothing */
	memset(&entry, 0, sizeof(entry));
	for (j = 0; j < 4; j++)
		(void)portguard_rl_fail(&entry, &config, now - 10 + j, &secs);
	portguard_rl_snapshot_take(&entry, &snap);
	assert_int_equal(portguard_rl_fail(&entry, &config, now, &secs),
			 PORTGUARD_RL_BANNED);
	portguard_rl_undo_ban(&entry, &snap, now - 1);
	assert_true(portguard_rl_is_banned(&entry, now, NULL));
	assert_int_equal(entry.ban_level, 1);

	/* refund takes the newest failure with that time, keeps order */
	memset(&entry, 0, sizeof(entry));
	(void)portguard_rl_fail(&entry, &config, 100, &secs);
	(void)portguard_rl_fail(&entry, &config, 200, &secs);
	(void)portguard_rl_fail(&entry, &config, 300, &secs);
	portguard_rl_refund(&entry, 200);
	assert_int_equal(portguard_rl_failures(&entry, &config, 310), 2);
	portguard_rl_refund(&entry, 200);
	assert_int_equal(portguard_rl_failures(&entry, &config, 310), 2);
	portguard_rl_refund(&entry, 100);
	portguard_rl_refund(&entry, 300);
	assert_int_equal(portguard_rl_failures(&entry, &config, 310), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rl_scenarios),
		cmocka_unit_test(test_rl_ring_wraps),
		cmocka_unit_test(test_rl_limit_lowered),
		cmocka_unit_test(test_rl_damaged_entry),
		cmocka_unit_test(test_rl_config_check),
		cmocka_unit_test(test_rl_key_make),
		cmocka_unit_test(test_rl_key_equals),
		cmocka_unit_test(test_rl_key_make_raw_mapped),
		cmocka_unit_test(test_rl_key_parse),
		cmocka_unit_test(test_rl_key_to_str_small),
		cmocka_unit_test(test_rl_window_estimate),
		cmocka_unit_test(test_rl_auto_ban),
		cmocka_unit_test(test_rl_history_codec),
		cmocka_unit_test(test_rl_attempt_undo_refund),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

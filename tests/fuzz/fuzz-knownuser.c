/* libFuzzer harness for portguard-knownuser.c: random sequences of
   successes, failures and checks for a few users at a few keys, with
   random configurations and a clock that moves forward, checked against a
   plain reference model (an unbounded list of absorbed failure times per
   user and key). Also: the pseudo-key never equals an address key and
   depends on every input byte that is hashed. */

#include "fuzz-common.h"
#include "portguard-knownuser.h"

#define USERS 3
#define KEYS 2
#define MAX_FAILS 256

struct ref_user {
	bool has_success;
	uint32_t success;
	unsigned int nfails;
	uint32_t fails[MAX_FAILS];
};

static bool ref_known(const struct ref_user *u,
		      const struct portguard_known_config *c, uint32_t now)
{
	if (c->period == 0 || !u->has_success || u->success == 0)
		return false;
	return now < u->success || now - u->success < c->period;
}

static unsigned int ref_in_window(const struct ref_user *u,
				  const struct portguard_known_config *c,
				  uint32_t now)
{
	unsigned int i, n = 0;

	for (i = 0; i < u->nfails; i++) {
		if ((now >= u->fails[i] ? now - u->fails[i] : 0) <
		    c->fail_window)
			n++;
	}
	return n;
}

static enum portguard_known_verdict
ref_fail(struct ref_user *u, const struct portguard_known_config *c,
	 uint32_t now)
{
	if (!ref_known(u, c, now))
		return PORTGUARD_KNOWN_NO;
	if (ref_in_window(u, c, now) >= c->fail_limit)
		return PORTGUARD_KNOWN_OVER_LIMIT;
	if (u->nfails == MAX_FAILS) {
		memmove(u->fails, u->fails + 1,
			(MAX_FAILS - 1) * sizeof(u->fails[0]));
		u->nfails--;
	}
	u->fails[u->nfails++] = now;
	return PORTGUARD_KNOWN_ABSORBED;
}

static void check_pseudo_keys(struct fuzz_in *in)
{
	struct portguard_rl_key key, k1, k2;
	char user[64];
	size_t len = fuzz_u8(in) % sizeof(user);
	unsigned int flip;

	memset(&key, 0, sizeof(key));
	key.addr.family = (fuzz_u8(in) & 1) != 0 ? 4 : 6;
	fuzz_bytes(in, key.addr.bytes, sizeof(key.addr.bytes));
	key.prefix = fuzz_u8(in);
	fuzz_bytes(in, user, len);
	portguard_known_key_make(&k1, &key, user, len);
	FUZZ_CHECK(portguard_known_key_is(&k1), "pseudo-key family");
	FUZZ_CHECK(!portguard_known_key_is(&key), "address key family");
	FUZZ_CHECK(!portguard_rl_key_equals(&k1, &key), "pseudo == address");
	portguard_known_key_make(&k2, &key, user, len);
	FUZZ_CHECK(portguard_rl_key_equals(&k1, &k2), "not deterministic");
	if (len == 0)
		return;
	/* one flipped bit of the name gives another key (a collision of
	   128 bits would be news) */
	flip = fuzz_u8(in) % (unsigned int)(len * 8);
	user[flip / 8] ^= (char)(1 << (flip % 8));
	portguard_known_key_make(&k2, &key, user, len);
	FUZZ_CHECK(!portguard_rl_key_equals(&k1, &k2), "bit flip collides");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct portguard_known_config config;
	struct portguard_rl_entry entries[KEYS][USERS];
	static struct ref_user refs[KEYS][USERS];
	const char *error;
	uint32_t now;
	unsigned int steps = 0;

	memset(&config, 0, sizeof(config));
	config.period = fuzz_u16(&in) % 4 == 0 ? 0 : 1 + fuzz_u16(&in);
	config.fail_limit = fuzz_u8(&in) % 18;
	config.fail_window = 1 + fuzz_u16(&in) % 2000;
	if (portguard_known_config_check(&config, &error) < 0) {
		FUZZ_CHECK(config.period != 0 &&
			   (config.fail_limit == 0 ||
			    config.fail_limit > PORTGUARD_RL_MAX_LIMIT),
			   "valid config refused: %s", error);
		return 0;
	}
	if (config.period != 0) {
		FUZZ_CHECK(config.fail_limit >= 1 &&
			   config.fail_limit <= PORTGUARD_RL_MAX_LIMIT,
			   "invalid limit %u accepted", config.fail_limit);
	}
	memset(entries, 0, sizeof(entries));
	memset(refs, 0, sizeof(refs));
	now = 1 + fuzz_u32(&in) % 0x7fffffff;

	while (fuzz_left(&in) && steps++ < 2000) {
		uint8_t op = fuzz_u8(&in);
		unsigned int k = (op >> 4) % KEYS, u = (op >> 6) % USERS;
		struct portguard_rl_entry *e = &entries[k][u];
		struct ref_user *r = &refs[k][u];

		switch (op & 3) {
		case 0:
			/* time passes: a little, or a lot */
			now += (op & 4) != 0 ? fuzz_u16(&in) : fuzz_u8(&in) % 8;
			break;
		case 1:
			portguard_known_success(e, now);
			r->has_success = true;
			r->success = now;
			r->nfails = 0;
			break;
		case 2: {
			enum portguard_known_verdict got, want;

			want = ref_fail(r, &config, now);
			got = portguard_known_fail(e, &config, now);
			FUZZ_CHECK(got == want, "fail at %u: got %d, want %d",
				   now, got, want);
			break;
		}
		case 3:
			FUZZ_CHECK(portguard_known_is_known(e, &config, now) ==
				   ref_known(r, &config, now),
				   "known at %u differs", now);
			FUZZ_CHECK(portguard_known_is_idle(e, &config, now) ==
				   !ref_known(r, &config, now),
				   "idle at %u differs", now);
			if ((op & 4) != 0)
				check_pseudo_keys(&in);
			break;
		}
	}
	return 0;
}

/* libFuzzer harness: failure counting and bans (portguard-ratelimit.h).

   Input: a key text and its default prefixes, a history text, raw history
   fields, window-estimate arguments, a configuration, an optional raw
   starting entry (as a killed process could leave it in shared memory),
   a start time, then a sequence of operations on one
   struct portguard_rl_entry with a monotonic clock.

   Checked:
   - keys: parse -> to_str -> parse gives the same key; family 4/6,
     prefix in range, host bits and unused bytes zero; key_make of the
     address agrees; equals() is reflexive;
   - history: parse accepts exactly "v1" and four space-separated decimal
     numbers in range (a reference parser here); to_str(parse(s)) parses
     back to the same fields; any fields survive to_str -> parse; a short
     buffer holds a NUL-terminated prefix;
   - window estimate against a reference computation and its bounds;
   - operations (fail, success, ban, unban, auto ban, refund, undo, config
     reload, queries at later times) against a reference model kept here:
     a plain array of failure times (oldest first) and the ban fields.
     After every operation failures(), is_banned() (+ remaining),
     is_idle(), the ring's contents and the ban fields must agree with
     the model. */

#include "fuzz-common.h"
#include "portguard-ratelimit.h"

#include <limits.h>

/* ---- keys ---- */

static bool key_valid(const struct portguard_rl_key *key)
{
	static const uint8_t zero[12];
	unsigned int bits, i;

	if (key->addr.family == 4) {
		if (memcmp(key->addr.bytes + 4, zero, 12) != 0)
			return false;
		bits = 32;
	} else if (key->addr.family == 6) {
		bits = 128;
	} else {
		return false;
	}
	if (key->prefix > bits)
		return false;
	for (i = key->prefix; i < bits; i++) {
		if (key->addr.bytes[i / 8] & (0x80u >> (i % 8)))
			return false;
	}
	return true;
}

static void check_key(const char *str, unsigned int p4, unsigned int p6)
{
	struct portguard_rl_key key, again, made;
	struct portguard_addr addr;
	const char *error = NULL;
	char text[64], *small;
	unsigned int size;
	int ret;

	ret = portguard_rl_key_parse(str, p4, p6, &key, &error);
	if (ret < 0) {
		FUZZ_CHECK(error != NULL && strlen(error) < 160, "error");
		FUZZ_CHECK(key.addr.family == 0, "key set on error");
		return;
	}
	FUZZ_CHECK(key_valid(&key), "invalid key from '%s'", str);
	FUZZ_CHECK(portguard_rl_key_equals(&key, &key), "equals");
	if (strchr(str, '/') == NULL) {
		FUZZ_CHECK(portguard_addr_parse(str, &addr) == 0, "addr");
		portguard_rl_key_make(&made, &addr, p4, p6);
		FUZZ_CHECK(portguard_rl_key_equals(&key, &made),
			   "key_make differs for '%s'", str);
		FUZZ_CHECK(key.prefix == (key.addr.family == 4 ?
					  (p4 > 32 ? 32 : p4) :
					  (p6 > 128 ? 128 : p6)),
			   "default prefix not used");
	}
	portguard_rl_key_to_str(&key, text, sizeof(text));
	FUZZ_CHECK(text[0] != '\0', "empty key text");
	/* a host key prints without prefix: parse it back as a host */
	FUZZ_CHECK(portguard_rl_key_parse(text, 32, 128, &again, &error) == 0,
		   "reparse of '%s' (from '%s') failed", text, str);
	FUZZ_CHECK(portguard_rl_key_equals(&key, &again),
		   "key round trip '%s' -> '%s'", str, text);
	/* short buffers: whole text or "" */
	for (size = 0; size <= strlen(text) + 1; size++) {
		small = malloc(size == 0 ? 1 : size);
		if (small == NULL)
			abort();
		portguard_rl_key_to_str(&key, small, size);
		if (size > 0)
			FUZZ_CHECK(size > strlen(text) ?
				   strcmp(small, text) == 0 : small[0] == '\0',
				   "key_to_str(size %u) = '%s'", size, small);
		free(small);
	}
}

/* ---- history ---- */

static int ref_history_parse(const char *s, uint32_t v[4])
{
	static const uint64_t max[4] = { UINT32_MAX, UINT32_MAX, 255, 255 };
	unsigned int i;

	if (s[0] != 'v' || s[1] != '1')
		return -1;
	s += 2;
	for (i = 0; i < 4; i++) {
		uint64_t x = 0;
		bool digits = false;

		if (*s++ != ' ')
			return -1;
		while (*s >= '0' && *s <= '9') {
			digits = true;
			if (x <= max[i])
				x = x * 10 + (uint64_t)(*s - '0');
			s++;
		}
		if (!digits || x > max[i])
			return -1;
		v[i] = (uint32_t)x;
	}
	return *s == '\0' ? 0 : -1;
}

static void history_roundtrip(const struct portguard_rl_entry *e)
{
	struct portguard_rl_entry back;
	char text[64], *small;
	unsigned int size;
	size_t len;

	portguard_rl_history_to_str(e, text, sizeof(text));
	len = strlen(text);
	FUZZ_CHECK(portguard_rl_history_parse(text, &back) == 0,
		   "history '%s' does not parse", text);
	FUZZ_CHECK(back.ban_until == e->ban_until &&
		   back.last_ban_start == e->last_ban_start &&
		   back.ban_level == e->ban_level && back.flags == e->flags &&
		   back.fail_count == 0 && back.fail_head == 0 &&
		   back.last_seen == 0, "history round trip '%s'", text);
	for (size = 0; size <= len + 1; size++) {
		small = malloc(size == 0 ? 1 : size);
		if (small == NULL)
			abort();
		portguard_rl_history_to_str(e, small, size);
		if (size > 0) {
			FUZZ_CHECK(strlen(small) < size &&
				   strncmp(small, text, strlen(small)) == 0 &&
				   strlen(small) == (len < size ? len :
						     size - 1),
				   "history_to_str(size %u) = '%s'", size,
				   small);
		}
		free(small);
	}
}

static void check_history(const char *str)
{
	struct portguard_rl_entry e;
	uint32_t v[4];
	int ret, ref;

	memset(&e, 0xa5, sizeof(e));
	ret = portguard_rl_history_parse(str, &e);
	ref = ref_history_parse(str, v);
	FUZZ_CHECK(ret == ref, "history_parse('%s') = %d, reference %d", str,
		   ret, ref);
	if (ret < 0)
		return;
	FUZZ_CHECK(e.ban_until == v[0] && e.last_ban_start == v[1] &&
		   e.ban_level == v[2] && e.flags == v[3],
		   "history_parse('%s') fields", str);
	history_roundtrip(&e);
}

/* ---- window estimate ---- */

static void check_estimate(unsigned int cur, unsigned int prev, uint32_t now,
			   unsigned int window)
{
	unsigned int est = portguard_rl_window_estimate(cur, prev, now,
							window);
	uint64_t part, prod, q, total;

	if (window == 0) {
		FUZZ_CHECK(est == cur, "window 0");
		return;
	}
	part = window - now % window; /* 1..window */
	prod = (uint64_t)prev * part;
	q = prod / window + (prod % window != 0 ? 1 : 0);
	total = (uint64_t)cur + q;
	if (total > UINT_MAX)
		total = UINT_MAX;
	FUZZ_CHECK(est == total, "estimate(%u, %u, %u, %u) = %u, ref %llu",
		   cur, prev, now, window, est, (unsigned long long)total);
	FUZZ_CHECK(est >= cur, "estimate below cur");
	FUZZ_CHECK((uint64_t)est <= (uint64_t)cur + prev, "estimate above "
		   "cur + prev");
	if (now % window == 0)
		FUZZ_CHECK(est == (cur + (uint64_t)prev > UINT_MAX ? UINT_MAX :
				   cur + prev), "window start: prev in full");
}

/* ---- the reference model ---- */

#define MODEL_MAX 64

struct model {
	uint32_t fails[MODEL_MAX]; /* oldest first */
	unsigned int n;
	uint32_t ban_until, last_ban_start;
	uint8_t level, flags;
};

static uint32_t age(uint32_t t, uint32_t now)
{
	return now >= t ? now - t : 0;
}

static void model_drop_front(struct model *m)
{
	memmove(m->fails, m->fails + 1, (m->n - 1) * sizeof(m->fails[0]));
	m->n--;
}

static bool model_banned(const struct model *m, uint32_t now)
{
	return m->ban_until > now;
}

static bool model_decayed(const struct model *m,
			  const struct portguard_rl_config *c, uint32_t now)
{
	return m->level == 0 || (now >= m->ban_until &&
				 now - m->ban_until >= c->ban_duration_max);
}

static unsigned int model_next_level(const struct model *m,
				     const struct portguard_rl_config *c,
				     uint32_t now)
{
	if (model_decayed(m, c, now))
		return 1;
	return m->level == 255 ? 255 : m->level + 1U;
}

static unsigned int model_ban_secs(const struct portguard_rl_config *c,
				   unsigned int level)
{
	uint64_t secs = c->ban_duration;
	unsigned int i;

	/* ban_duration doubled level - 1 times, capped */
	for (i = 1; i < level && secs < c->ban_duration_max; i++)
		secs *= 2;
	return secs > c->ban_duration_max ? c->ban_duration_max :
		(unsigned int)secs;
}

static void model_start_ban(struct model *m, uint32_t now,
			    unsigned int level, unsigned int secs)
{
	uint64_t until = (uint64_t)now + secs;

	m->level = (uint8_t)level;
	m->last_ban_start = now;
	m->ban_until = until > UINT32_MAX ? UINT32_MAX : (uint32_t)until;
	m->n = 0;
}

static unsigned int model_fail(struct model *m,
			       const struct portguard_rl_config *c,
			       uint32_t now)
{
	unsigned int level, secs;

	/* keep failures within the window (from the oldest on), at most
	   limit of them with the new one */
	while (m->n > 0 && (m->n > c->fail_limit ||
			    age(m->fails[0], now) >= c->fail_window))
		model_drop_front(m);
	if (m->n >= c->fail_limit)
		model_drop_front(m);
	m->fails[m->n++] = now;
	if (model_banned(m, now) || m->n < c->fail_limit)
		return 0;
	level = model_next_level(m, c, now);
	secs = model_ban_secs(c, level);
	model_start_ban(m, now, level, secs);
	m->flags &= (uint8_t)~PORTGUARD_RL_FLAG_MANUAL;
	return secs;
}

static unsigned int model_failures(const struct model *m,
				   const struct portguard_rl_config *c,
				   uint32_t now)
{
	unsigned int i, n = 0;

	for (i = m->n > c->fail_limit ? m->n - c->fail_limit : 0; i < m->n;
	     i++) {
		if (age(m->fails[i], now) < c->fail_window)
			n++;
	}
	return n;
}

static void model_from_entry(struct model *m,
			     const struct portguard_rl_entry *e)
{
	unsigned int i;

	memset(m, 0, sizeof(*m));
	m->n = e->fail_count > PORTGUARD_RL_MAX_LIMIT ?
		PORTGUARD_RL_MAX_LIMIT : e->fail_count;
	for (i = 0; i < m->n; i++)
		m->fails[i] = e->fail_times[(e->fail_head + i) %
					    PORTGUARD_RL_MAX_LIMIT];
	m->ban_until = e->ban_until;
	m->last_ban_start = e->last_ban_start;
	m->level = e->ban_level;
	m->flags = e->flags;
}

static void compare(const struct model *m, const struct portguard_rl_entry *e,
		    const struct portguard_rl_config *c, uint32_t now,
		    const char *op)
{
	unsigned int count = e->fail_count > PORTGUARD_RL_MAX_LIMIT ?
		PORTGUARD_RL_MAX_LIMIT : e->fail_count;
	unsigned int i, rem = 12345, want;
	bool banned;

	FUZZ_CHECK(count == m->n, "after %s at %u: %u failures kept, model %u",
		   op, now, count, m->n);
	for (i = 0; i < count; i++) {
		uint32_t t = e->fail_times[(e->fail_head + i) %
					   PORTGUARD_RL_MAX_LIMIT];

		FUZZ_CHECK(t == m->fails[i], "after %s: failure %u at %u, "
			   "model %u", op, i, t, m->fails[i]);
	}
	FUZZ_CHECK(e->ban_until == m->ban_until &&
		   e->last_ban_start == m->last_ban_start &&
		   e->ban_level == m->level && e->flags == m->flags,
		   "after %s at %u: ban fields %u %u %u %u, model %u %u %u %u",
		   op, now, e->ban_until, e->last_ban_start, e->ban_level,
		   e->flags, m->ban_until, m->last_ban_start, m->level,
		   m->flags);
	want = model_failures(m, c, now);
	FUZZ_CHECK(portguard_rl_failures(e, c, now) == want,
		   "after %s: failures(%u) = %u, model %u", op, now,
		   portguard_rl_failures(e, c, now), want);
	FUZZ_CHECK(want <= c->fail_limit, "more failures than the limit");
	banned = portguard_rl_is_banned(e, now, &rem);
	FUZZ_CHECK(banned == model_banned(m, now) &&
		   rem == (banned ? m->ban_until - now : 0),
		   "after %s: is_banned(%u) = %d rem %u, model until %u", op,
		   now, banned, rem, m->ban_until);
	FUZZ_CHECK(portguard_rl_is_banned(e, now, NULL) == banned, "NULL rem");
	FUZZ_CHECK(portguard_rl_is_idle(e, c, now) ==
		   (!banned && want == 0 && model_decayed(m, c, now)),
		   "after %s: is_idle(%u)", op, now);
}

static void read_config(struct fuzz_in *in, struct portguard_rl_config *c)
{
	uint8_t f = fuzz_u8(in);
	const char *error = NULL;
	struct portguard_rl_config bad;

	c->fail_limit = 1 + fuzz_u8(in) % PORTGUARD_RL_MAX_LIMIT;
	if (f & 1)
		c->fail_window = fuzz_u32(in);
	else
		c->fail_window = fuzz_u8(in);
	if (c->fail_window == 0)
		c->fail_window = 1;
	c->ban_duration = (f & 2) ? fuzz_u32(in) : fuzz_u8(in);
	if (c->ban_duration == 0)
		c->ban_duration = 1;
	c->ban_duration_max = c->ban_duration +
		((f & 8) ? fuzz_u32(in) : fuzz_u16(in));
	if (c->ban_duration_max < c->ban_duration)
		c->ban_duration_max = UINT32_MAX;
	FUZZ_CHECK(portguard_rl_config_check(c, &error) == 0,
		   "valid config refused: %s", error);
	/* and some invalid ones */
	bad = *c;
	bad.fail_limit = (f & 4) ? 0 : PORTGUARD_RL_MAX_LIMIT + 1 + (f >> 4);
	FUZZ_CHECK(portguard_rl_config_check(&bad, &error) < 0 &&
		   error != NULL, "bad fail_limit accepted");
	bad = *c;
	bad.fail_window = 0;
	FUZZ_CHECK(portguard_rl_config_check(&bad, &error) < 0, "window 0");
	bad = *c;
	bad.ban_duration = 0;
	FUZZ_CHECK(portguard_rl_config_check(&bad, &error) < 0, "ban 0");
	if (c->ban_duration > 1) {
		bad = *c;
		bad.ban_duration_max = c->ban_duration - 1;
		FUZZ_CHECK(portguard_rl_config_check(&bad, &error) < 0,
			   "max < duration accepted");
	}
}

static void run_ops(struct fuzz_in *in)
{
	struct portguard_rl_config c;
	struct portguard_rl_entry e;
	struct portguard_rl_snapshot snap;
	struct model m, msnap;
	uint32_t now, started = 0;
	unsigned int steps = 0;
	bool have_snap = false;

	read_config(in, &c);
	memset(&e, 0, sizeof(e));
	if (fuzz_u8(in) & 1) {
		/* a damaged entry left in shared memory */
		fuzz_bytes(in, &e, sizeof(e));
	}
	now = fuzz_u32(in);
	if (now > e.last_ban_start && (e.flags & 0x80))
		now = e.last_ban_start;
	model_from_entry(&m, &e);
	compare(&m, &e, &c, now, "start");
	memset(&msnap, 0, sizeof(msnap));
	memset(&snap, 0, sizeof(snap));

	while (fuzz_left(in) && steps++ < 2000) {
		uint8_t op = fuzz_u8(in);
		uint32_t step;
		unsigned int secs, model_secs;
		const char *name = "?";

		/* advance the clock: small steps mostly */
		switch (op >> 6) {
		case 0: step = 0; break;
		case 1: step = 1 + (op & 7); break;
		case 2: step = fuzz_u8(in); break;
		default: step = fuzz_u32(in) >> (fuzz_u8(in) % 32); break;
		}
		now = step > UINT32_MAX - now ? UINT32_MAX : now + step;

		switch (op % 12) {
		case 0:
		case 1:
		case 2: {
			enum portguard_rl_verdict v;
			struct portguard_rl_snapshot before;

			name = "fail";
			portguard_rl_snapshot_take(&e, &before);
			v = portguard_rl_fail(&e, &c, now, &secs);
			model_secs = model_fail(&m, &c, now);
			FUZZ_CHECK((v == PORTGUARD_RL_BANNED) ==
				   (model_secs > 0) && secs == model_secs,
				   "fail at %u: verdict %d secs %u, model %u",
				   now, v, secs, model_secs);
			if (v == PORTGUARD_RL_BANNED) {
				FUZZ_CHECK(secs >= c.ban_duration ||
					   secs == c.ban_duration_max, "short");
				FUZZ_CHECK(secs <= c.ban_duration_max, "long");
				/* (a ban starting at the last second of the
				   32-bit clock ends there: ban_until is
				   capped at UINT32_MAX) */
				FUZZ_CHECK(now == UINT32_MAX ||
					   portguard_rl_is_banned(&e, now,
								  NULL),
					   "not banned after BANNED");
				snap = before;
				started = now;
				have_snap = true;
			}
			break;
		}
		case 3:
			name = "success";
			portguard_rl_success(&e, now);
			m.n = 0;
			break;
		case 4: {
			unsigned int want = (op & 0x20) ? 0 : fuzz_u16(in);
			unsigned int level;

			name = "ban";
			portguard_rl_snapshot_take(&e, &snap);
			msnap = m;
			started = now;
			have_snap = true;
			secs = portguard_rl_ban(&e, &c, now, want);
			level = model_banned(&m, now) ?
				(m.level == 0 ? 1 : m.level) :
				model_next_level(&m, &c, now);
			model_secs = want != 0 ? want :
				model_ban_secs(&c, level);
			model_start_ban(&m, now, level, model_secs);
			m.flags |= PORTGUARD_RL_FLAG_MANUAL;
			FUZZ_CHECK(secs == model_secs, "ban secs %u, model %u",
				   secs, model_secs);
			break;
		}
		case 5:
			name = "unban";
			portguard_rl_unban(&e, now);
			if (m.ban_until > now)
				m.ban_until = now;
			m.flags &= (uint8_t)~PORTGUARD_RL_FLAG_MANUAL;
			m.n = 0;
			FUZZ_CHECK(!portguard_rl_is_banned(&e, now, NULL),
				   "banned after unban");
			break;
		case 6: {
			unsigned int level;

			name = "auto_ban";
			portguard_rl_snapshot_take(&e, &snap);
			started = now;
			have_snap = true;
			secs = portguard_rl_auto_ban(&e, &c, now);
			level = model_next_level(&m, &c, now);
			model_secs = model_ban_secs(&c, level);
			model_start_ban(&m, now, level, model_secs);
			m.flags &= (uint8_t)~PORTGUARD_RL_FLAG_MANUAL;
			FUZZ_CHECK(secs == model_secs,
				   "auto_ban secs %u, model %u", secs,
				   model_secs);
			break;
		}
		case 7: {
			/* give back a failure: one of the model's, or any */
			uint8_t pick = fuzz_u8(in);
			uint32_t when = m.n > 0 && pick < 200 ?
				m.fails[pick % m.n] : now - (pick & 3);
			unsigned int i;

			name = "refund";
			portguard_rl_refund(&e, when);
			for (i = m.n; i > 0; i--) {
				if (m.fails[i - 1] == when) {
					memmove(m.fails + i - 1, m.fails + i,
						(m.n - i) * sizeof(m.fails[0]));
					m.n--;
					break;
				}
			}
			break;
		}
		case 8:
			name = "undo_ban";
			if (!have_snap)
				break;
			{
				uint32_t at = (op & 0x20) ? started :
					started + 1;

				portguard_rl_undo_ban(&e, &snap, at);
				if (m.last_ban_start == at &&
				    m.level != snap.ban_level) {
					m.ban_until = snap.ban_until;
					m.last_ban_start = snap.last_ban_start;
					m.level = snap.ban_level;
					m.flags = snap.flags;
				}
			}
			break;
		case 9:
			name = "reload";
			read_config(in, &c);
			break;
		case 10: {
			/* queries at a later time change nothing */
			uint32_t later = now + fuzz_u16(in);
			struct portguard_rl_entry copy = e;

			if (later < now)
				later = UINT32_MAX;
			name = "query";
			compare(&m, &e, &c, later, "query");
			FUZZ_CHECK(memcmp(&copy, &e, sizeof(e)) == 0,
				   "query changed the entry");
			break;
		}
		default:
			name = "history";
			history_roundtrip(&e);
			break;
		}
		compare(&m, &e, &c, now, name);
	}
	(void)msnap;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct portguard_rl_entry e;
	char *s;
	unsigned int p4, p6, cur, prev, window;
	uint32_t now;

	/* key */
	p4 = fuzz_u8(&in);
	p6 = fuzz_u8(&in);
	s = fuzz_str(&in, fuzz_u8(&in) % 80);
	check_key(s, p4 % 40, p6 > 200 ? UINT_MAX : p6);
	free(s);

	/* history text and raw history fields */
	s = fuzz_str(&in, fuzz_u8(&in) % 64);
	check_history(s);
	free(s);
	memset(&e, 0, sizeof(e));
	e.ban_until = fuzz_u32(&in);
	e.last_ban_start = fuzz_u32(&in);
	e.ban_level = fuzz_u8(&in);
	e.flags = fuzz_u8(&in);
	history_roundtrip(&e);

	/* window estimate */
	cur = fuzz_u32(&in);
	prev = fuzz_u32(&in);
	now = fuzz_u32(&in);
	window = fuzz_u32(&in);
	if (window & 0x80000000u)
		window &= 0xff;
	check_estimate(cur, prev, now, window);
	check_estimate(cur & 0xff, prev & 0xff, now, window);

	run_ops(&in);
	return 0;
}

/* Unit tests for portguard-logfmt.c */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "test-common.h"

#include "portguard-logfmt.h"

#define CANARY 'Z'
#define BIG 4096

/* Bytes at and after offset "from" must all still be CANARY. */
static void check_canary(const char *label, const char *buf, size_t from,
			 size_t total)
{
	size_t i;

	for (i = from; i < total; i++) {
		if (buf[i] != CANARY)
			fail_msg("%s: byte %zu written past the buffer",
				 label, i);
	}
}

/* A cut must never leave half an escape ("\x4") at the end. */
static void check_no_half_escape(const char *label, const char *str)
{
	const char *bs = strrchr(str, '\\');

	if (bs != NULL && strlen(bs) < 4)
		fail_msg("%s: half escape at end of '%s'", label, str);
}

/* ---- portguard_log_escape ---- */

struct escape_row {
	const char *label;
	const char *src;
	size_t max_src;
	size_t dst_size;
	const char *expected;
};

static const struct escape_row escape_rows[] = {
	{ "plain", "abc", 128, 64, "abc" },
	{ "NULL", NULL, 128, 64, "-" },
	{ "empty", "", 128, 64, "-" },
	{ "printable edges", "!~", 128, 64, "!~" },
	{ "space", "a b", 128, 64, "a\\x20b" },
	{ "tab cr lf", "\t\r\n", 128, 64, "\\x09\\x0D\\x0A" },
	{ "control 0x01", "\x01", 128, 64, "\\x01" },
	{ "escape char", "\x1b[0m", 128, 64, "\\x1B[0m" },
	{ "DEL", "\x7f", 128, 64, "\\x7F" },
	{ "equals", "k=v", 128, 64, "k\\x3Dv" },
	{ "double quote", "\"q\"", 128, 64, "\\x22q\\x22" },
	{ "backslash", "a\\b", 128, 64, "a\\x5Cb" },
	{ "backslash-x lookalike", "\\x41", 128, 64, "\\x5Cx41" },
	{ "single quote copied", "it's", 128, 64, "it's" },
	{ "8-bit utf-8", "caf\xc3\xa9", 128, 64, "caf\\xC3\\xA9" },
	{ "byte 0xff", "\xff", 128, 64, "\\xFF" },
	{ "byte 0x80", "\x80", 128, 64, "\\x80" },
	{ "fake log line", "x\nportguard: ok=yes", 128, 64,
	  "x\\x0Aportguard:\\x20ok\\x3Dyes" },
	/* source bound */
	{ "longer than max", "abcdef", 3, 64, "abc..." },
	{ "exactly max", "abc", 3, 64, "abc" },
	{ "max 0", "abc", 0, 64, "..." },
	{ "max 0, empty", "", 0, 64, "-" },
	{ "max counts source bytes", " bc", 1, 64, "\\x20..." },
	{ "max cuts 8-bit", "\xc3\xa9\xc3\xa9", 2, 64, "\\xC3\\xA9..." },
	/* destination bound */
	{ "size 0", "abc", 128, 0, "" },
	{ "size 1", "abc", 128, 1, "" },
	{ "size 2", "abc", 128, 2, "a" },
	{ "size 3", "abc", 128, 3, "ab" },
	{ "size 4 exact fit", "abc", 128, 4, "abc" },
	{ "size 5", "abcdef", 128, 5, "abcd" },
	{ "NULL size 1", NULL, 128, 1, "" },
	{ "NULL size 2", NULL, 128, 2, "-" },
	{ "escape size 2", " a", 128, 2, "" },
	{ "escape size 4", " a", 128, 4, "" },
	{ "escape size 5", " a", 128, 5, "\\x20" },
	{ "escape size 6", " a", 128, 6, "\\x20a" },
	{ "no half escape", "a b", 128, 5, "a" },
	{ "no half escape 2", "a b", 128, 2, "a" },
	{ "two escapes size 8", "  ", 128, 8, "\\x20" },
	{ "two escapes size 9", "  ", 128, 9, "\\x20\\x20" },
	{ "mark does not fit", "abcdef", 3, 5, "abc" },
	{ "mark does not fit 2", "abcdef", 3, 6, "abc" },
	{ "mark just fits", "abcdef", 3, 7, "abc..." },
};

static void test_log_escape(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(escape_rows); i++) {
		const struct escape_row *row = &escape_rows[i];
		char buf[128];
		size_t ret;

		memset(buf, CANARY, sizeof(buf));
		ret = portguard_log_escape(buf, row->dst_size, row->src,
					   row->max_src);
		check_canary(row->label, buf, row->dst_size, sizeof(buf));
		if (row->dst_size == 0) {
			CHECK_INT(row->label, ret, 0);
			continue;
		}
		CHECK_STR(row->label, buf, row->expected);
		CHECK_INT(row->label, ret, strlen(row->expected));
	}
}

/* Every byte value 0..255 escapes exactly as the rule says. */
static void test_log_escape_all_bytes(void **state)
{
	unsigned int c;

	(void)state;
	for (c = 1; c < 256; c++) {
		char src[2] = { (char)c, '\0' }, buf[16], expected[16];
		char label[32];

		(void)snprintf(label, sizeof(label), "byte 0x%02x", c);
		if (c >= 0x21 && c <= 0x7e && c != '"' && c != '\\' &&
		    c != '=')
			(void)snprintf(expected, sizeof(expected), "%c", c);
		else
			(void)snprintf(expected, sizeof(expected), "\\x%02X",
				       c);
		(void)portguard_log_escape(buf, sizeof(buf), src, 128);
		CHECK_STR(label, buf, expected);
	}
}

/* Every destination size from 0 up: never overflow, always terminated,
   always a prefix of the full result cut at a character boundary. */
static void test_log_escape_every_size(void **state)
{
	static const char *const srcs[] = {
		"a b=c\"d\\e\xff" "f\tg",
		"   ",
		"plain-text-only",
	};
	unsigned int s;
	size_t size;

	(void)state;
	for (s = 0; s < N_ELEMENTS(srcs); s++) {
		char full[256];
		size_t full_len =
			portguard_log_escape(full, sizeof(full), srcs[s], 8);

		for (size = 0; size <= full_len + 2; size++) {
			char buf[256], label[64];
			size_t ret;

			(void)snprintf(label, sizeof(label),
				       "src %u size %zu", s, size);
			memset(buf, CANARY, sizeof(buf));
			ret = portguard_log_escape(buf, size, srcs[s], 8);
			check_canary(label, buf, size, sizeof(buf));
			if (size == 0) {
				CHECK_INT(label, ret, 0);
				continue;
			}
			CHECK_INT(label, ret, strlen(buf));
			if (ret >= size)
				fail_msg("%s: length %zu >= size", label, ret);
			CHECK_INT(label, strncmp(buf, full, ret), 0);
			check_no_half_escape(label, buf);
			if (size > full_len)
				CHECK_STR(label, buf, full);
		}
	}
}

/* ---- portguard_kv_* ---- */

static void test_kv_basic(void **state)
{
	struct portguard_kv kv;
	char buf[256];

	(void)state;
	portguard_kv_init(&kv, buf, sizeof(buf));
	CHECK_STR("init", buf, "");
	CHECK_INT("init", kv.len, 0);
	portguard_kv_word(&kv, "event");
	portguard_kv_str(&kv, "s", "v");
	portguard_kv_str(&kv, "esc", "a b=c");
	portguard_kv_str(&kv, "null", NULL);
	portguard_kv_str(&kv, "empty", "");
	portguard_kv_uint(&kv, "u", 0);
	portguard_kv_uint(&kv, "umax", 18446744073709551615ULL);
	portguard_kv_int_or_unknown(&kv, "i", 42);
	portguard_kv_int_or_unknown(&kv, "zero", 0);
	portguard_kv_int_or_unknown(&kv, "neg", -1);
	portguard_kv_int_or_unknown(&kv, "min", -9223372036854775807LL - 1);
	portguard_kv_bool(&kv, "t", true);
	portguard_kv_bool(&kv, "f", false);
	CHECK_STR("basic", buf,
		  "event s=v esc=a\\x20b\\x3Dc null=- empty=- u=0 "
		  "umax=18446744073709551615 i=42 zero=0 neg=- min=- "
		  "t=yes f=no");
	CHECK_INT("basic", kv.len, strlen(buf));
	CHECK_INT("basic", kv.overflow, 0);
}

static void test_kv_first_item_no_space(void **state)
{
	struct portguard_kv kv;
	char buf[64];

	(void)state;
	portguard_kv_init(&kv, buf, sizeof(buf));
	portguard_kv_str(&kv, "k", "v");
	portguard_kv_uint(&kv, "n", 7);
	CHECK_STR("first kv", buf, "k=v n=7");

	portguard_kv_init(&kv, buf, sizeof(buf));
	portguard_kv_bool(&kv, "b", true);
	CHECK_STR("first bool", buf, "b=yes");
}

static void test_kv_value_bound(void **state)
{
	struct portguard_kv kv;
	char buf[BIG], value[300], expected[400];

	(void)state;
	memset(value, 'a', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	(void)snprintf(expected, sizeof(expected), "v=%.*s...",
		       PORTGUARD_LOG_VALUE_MAX, value);
	portguard_kv_init(&kv, buf, sizeof(buf));
	portguard_kv_str(&kv, "v", value);
	CHECK_STR("value bound", buf, expected);
	CHECK_INT("value bound", kv.overflow, 0);

	/* exactly PORTGUARD_LOG_VALUE_MAX bytes: no mark */
	value[PORTGUARD_LOG_VALUE_MAX] = '\0';
	(void)snprintf(expected, sizeof(expected), "v=%s", value);
	portguard_kv_init(&kv, buf, sizeof(buf));
	portguard_kv_str(&kv, "v", value);
	CHECK_STR("value at bound", buf, expected);

	/* worst case: every byte escaped */
	memset(value, '\n', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	portguard_kv_init(&kv, buf, sizeof(buf));
	portguard_kv_str(&kv, "v", value);
	CHECK_INT("escaped bound", strlen(buf),
		  2 + 4 * PORTGUARD_LOG_VALUE_MAX + 3);
	CHECK_INT("escaped bound", kv.overflow, 0);
}

/* Build the same line into buffers of every size. */
static void build_line(struct portguard_kv *kv, char *buf, size_t size)
{
	portguard_kv_init(kv, buf, size);
	portguard_kv_word(kv, "ev");
	portguard_kv_uint(kv, "n", 42);
	portguard_kv_str(kv, "s", "a b");
	portguard_kv_bool(kv, "ok", true);
	portguard_kv_int_or_unknown(kv, "x", -5);
}

#define FULL_LINE "ev n=42 s=a\\x20b ok=yes x=-"

struct kv_size_row {
	const char *label;
	size_t size;
	const char *expected;
	bool overflow;
};

static const struct kv_size_row kv_size_rows[] = {
	{ "size 0", 0, NULL, true },
	{ "size 1", 1, "", true },
	{ "size 2", 2, "", true },
	{ "size 3: word", 3, "ev", true },
	{ "size 5", 5, "ev", true },
	{ "number item not split", 7, "ev", true },
	{ "number item fits", 8, "ev n=42", true },
	{ "key without value dropped", 11, "ev n=42", true },
	{ "value cut before escape", 12, "ev n=42 s=a", true },
	{ "value cut no half escape", 14, "ev n=42 s=a", true },
	{ "value escape fits", 16, "ev n=42 s=a\\x20", true },
	{ "value complete", 17, "ev n=42 s=a\\x20b", true },
	{ "bool not split", 20, "ev n=42 s=a\\x20b", true },
	{ "bool fits", 24, "ev n=42 s=a\\x20b ok=yes", true },
	{ "last missing", 27, "ev n=42 s=a\\x20b ok=yes", true },
	{ "exact fit", sizeof(FULL_LINE), FULL_LINE, false },
	{ "roomy", 200, FULL_LINE, false },
};

static void test_kv_sizes(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(kv_size_rows); i++) {
		const struct kv_size_row *row = &kv_size_rows[i];
		struct portguard_kv kv;
		char buf[256];

		memset(buf, CANARY, sizeof(buf));
		build_line(&kv, buf, row->size);
		check_canary(row->label, buf, row->size, sizeof(buf));
		CHECK_INT(row->label, kv.overflow, row->overflow);
		if (row->expected == NULL)
			continue;
		CHECK_STR(row->label, buf, row->expected);
		CHECK_INT(row->label, kv.len, strlen(row->expected));
	}
}

/* Every size: never overflow, terminated, a prefix of the full line that
   does not end in a separator, "key=" or half an escape. */
static void test_kv_every_size(void **state)
{
	size_t size;

	(void)state;
	for (size = 0; size <= sizeof(FULL_LINE) + 2; size++) {
		struct portguard_kv kv;
		char buf[256], label[32];
		size_t len;

		(void)snprintf(label, sizeof(label), "size %zu", size);
		memset(buf, CANARY, sizeof(buf));
		build_line(&kv, buf, size);
		check_canary(label, buf, size, sizeof(buf));
		CHECK_INT(label, kv.overflow, size < sizeof(FULL_LINE));
		if (size == 0)
			continue;
		len = strlen(buf);
		CHECK_INT(label, kv.len, len);
		if (len >= size)
			fail_msg("%s: length %zu >= size", label, len);
		CHECK_INT(label, strncmp(buf, FULL_LINE, len), 0);
		check_no_half_escape(label, buf);
		if (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '='))
			fail_msg("%s: dangling '%s'", label, buf);
	}
}

static void test_kv_nothing_after_overflow(void **state)
{
	struct portguard_kv kv;
	char buf[12];

	(void)state;
	portguard_kv_init(&kv, buf, sizeof(buf));
	portguard_kv_word(&kv, "ev");
	portguard_kv_str(&kv, "long", "0123456789");
	CHECK_INT("after overflow", kv.overflow, 1);
	CHECK_STR("after overflow", buf, "ev long=012");
	/* a short item would fit after a rollback, but must not appear */
	portguard_kv_init(&kv, buf, sizeof(buf));
	portguard_kv_word(&kv, "ev");
	portguard_kv_str(&kv, "k", "         ");
	portguard_kv_uint(&kv, "n", 1);
	CHECK_INT("after overflow 2", kv.overflow, 1);
	CHECK_STR("after overflow 2", buf, "ev k=\\x20");
	/* "k=" fits but not the first escape: the item is dropped whole */
	memset(buf, CANARY, sizeof(buf));
	portguard_kv_init(&kv, buf, 8);
	portguard_kv_word(&kv, "ev");
	portguard_kv_str(&kv, "k", " x");
	portguard_kv_bool(&kv, "b", true);
	CHECK_INT("no bare key", kv.overflow, 1);
	CHECK_STR("no bare key", buf, "ev");
	CHECK_INT("no bare key", kv.len, 2);
	check_canary("no bare key", buf, 8, sizeof(buf));
}

/* ---- portguard_logfmt_tls ---- */

struct tls_row {
	const char *label;
	struct portguard_tls_info info;
	const char *expected;
};

static const struct tls_row tls_rows[] = {
	{ "full",
	  { 465, "implicit", "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256,
	    "x25519", "mail.example.org", NULL, false, NULL, 3 },
	  "tls_established port=465 mode=implicit proto=TLSv1.3 "
	  "cipher=TLS_AES_256_GCM_SHA384 bits=256 group=x25519 "
	  "sni=mail.example.org alpn=- resumed=no client_cert=- "
	  "handshake_ms=3" },
	{ "unknowns",
	  { 587, "starttls", NULL, "", -1, NULL, "", NULL, true, NULL, -1 },
	  "tls_established port=587 mode=starttls proto=- cipher=- bits=- "
	  "group=- sni=- alpn=- resumed=yes client_cert=- handshake_ms=-" },
	{ "zero values",
	  { 0, NULL, NULL, NULL, 0, NULL, NULL, NULL, false, NULL, 0 },
	  "tls_established port=0 mode=- proto=- cipher=- bits=0 group=- "
	  "sni=- alpn=- resumed=no client_cert=- handshake_ms=0" },
	{ "hostile client strings",
	  { 465, "implicit", "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 128,
	    "secp256r1", "evil host=1\n", "h2 \"x\"", false,
	    "CN=J\xc3\xb6rg,O=\\Org", 12 },
	  "tls_established port=465 mode=implicit proto=TLSv1.2 "
	  "cipher=ECDHE-RSA-AES128-GCM-SHA256 bits=128 group=secp256r1 "
	  "sni=evil\\x20host\\x3D1\\x0A alpn=h2\\x20\\x22x\\x22 resumed=no "
	  "client_cert=CN\\x3DJ\\xC3\\xB6rg,O\\x3D\\x5COrg handshake_ms=12" },
};

static void test_logfmt_tls(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(tls_rows); i++) {
		const struct tls_row *row = &tls_rows[i];
		char buf[BIG];

		CHECK_STR(row->label,
			  portguard_logfmt_tls(&row->info, buf, sizeof(buf)),
			  row->expected);
	}
}

static void test_logfmt_tls_long_cert(void **state)
{
	struct portguard_tls_info info;
	char cert[400], buf[BIG], expected[BIG];

	(void)state;
	memset(&info, 0, sizeof(info));
	memset(cert, 'c', sizeof(cert) - 1);
	cert[sizeof(cert) - 1] = '\0';
	info.port = 465;
	info.client_cert = cert;
	info.bits = -1;
	(void)snprintf(expected, sizeof(expected),
		       "tls_established port=465 mode=- proto=- cipher=- "
		       "bits=- group=- sni=- alpn=- resumed=no "
		       "client_cert=%.*s... handshake_ms=0",
		       PORTGUARD_LOG_VALUE_MAX, cert);
	CHECK_STR("long cert", portguard_logfmt_tls(&info, buf, sizeof(buf)),
		  expected);
}

struct tls_size_row {
	const char *label;
	size_t size;
	const char *expected;
};

static const struct tls_size_row tls_size_rows[] = {
	{ "size 0", 0, NULL },
	{ "size 1", 1, "" },
	{ "size 2", 2, "" },
	{ "size 5", 5, "" },
	{ "word only", 16, "tls_established" },
	{ "port not split", 24, "tls_established" },
	{ "port", 25, "tls_established port=465" },
	{ "value cut", 34, "tls_established port=465 mode=imp" },
};

static void test_logfmt_tls_small(void **state)
{
	static const struct portguard_tls_info info = {
		465, "implicit", "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256,
		"x25519", "mail.example.org", NULL, false, NULL, 3
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(tls_size_rows); i++) {
		const struct tls_size_row *row = &tls_size_rows[i];
		char buf[64];
		const char *ret;

		memset(buf, CANARY, sizeof(buf));
		ret = portguard_logfmt_tls(&info, buf, row->size);
		check_canary(row->label, buf, row->size, sizeof(buf));
		if (ret != buf)
			fail_msg("%s: did not return buf", row->label);
		if (row->expected != NULL)
			CHECK_STR(row->label, buf, row->expected);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_escape),
		cmocka_unit_test(test_log_escape_all_bytes),
		cmocka_unit_test(test_log_escape_every_size),
		cmocka_unit_test(test_kv_basic),
		cmocka_unit_test(test_kv_first_item_no_space),
		cmocka_unit_test(test_kv_value_bound),
		cmocka_unit_test(test_kv_sizes),
		cmocka_unit_test(test_kv_every_size),
		cmocka_unit_test(test_kv_nothing_after_overflow),
		cmocka_unit_test(test_logfmt_tls),
		cmocka_unit_test(test_logfmt_tls_long_cert),
		cmocka_unit_test(test_logfmt_tls_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

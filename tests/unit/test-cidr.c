/* Unit tests for portguard-cidr.c */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "test-common.h"

#include "portguard-cidr.h"

/* ---- addresses ---- */

struct addr_row {
	const char *label;
	const char *input;
	int ret;
	int family;
	/* canonical text form when ret == 0 */
	const char *text;
};

static const struct addr_row addr_rows[] = {
	{ "ipv4", "192.0.2.7", 0, 4, "192.0.2.7" },
	{ "ipv4 zero", "0.0.0.0", 0, 4, "0.0.0.0" },
	{ "ipv4 broadcast", "255.255.255.255", 0, 4, "255.255.255.255" },
	{ "ipv6", "2001:db8::1", 0, 6, "2001:db8::1" },
	{ "ipv6 uncompressed", "2001:0db8:0:0:0:0:0:0001", 0, 6,
	  "2001:db8::1" },
	{ "ipv6 any", "::", 0, 6, "::" },
	{ "ipv6 loopback", "::1", 0, 6, "::1" },
	{ "v4-mapped becomes ipv4", "::ffff:192.0.2.7", 0, 4, "192.0.2.7" },
	{ "v4-mapped hex form", "::ffff:c000:207", 0, 4, "192.0.2.7" },
	{ "v4-compatible stays ipv6", "::192.0.2.7", 0, 6, "::192.0.2.7" },
	{ "empty", "", -1, 0, NULL },
	{ "NULL", NULL, -1, 0, NULL },
	{ "bracketed ipv6", "[2001:db8::1]", -1, 0, NULL },
	{ "with prefix", "192.0.2.7/32", -1, 0, NULL },
	{ "ipv4 octet too big", "192.0.2.256", -1, 0, NULL },
	{ "ipv4 three parts", "192.0.2", -1, 0, NULL },
	{ "ipv4 leading space", " 192.0.2.7", -1, 0, NULL },
	{ "ipv4 trailing space", "192.0.2.7 ", -1, 0, NULL },
	{ "hostname", "localhost", -1, 0, NULL },
	{ "ipv6 zone id", "fe80::1%eth0", -1, 0, NULL },
	{ "ipv6 two ::", "1::2::3", -1, 0, NULL },
	{ "too long", "1111:2222:3333:4444:5555:6666:7777:8888:"
	  "9999:aaaa:bbbb:cccc:dddd:eeee:ffff", -1, 0, NULL },
};

static void test_addr_parse(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(addr_rows); i++) {
		const struct addr_row *row = &addr_rows[i];
		struct portguard_addr addr;
		char buf[64];
		int ret;

		memset(&addr, 0xaa, sizeof(addr));
		ret = portguard_addr_parse(row->input, &addr);
		CHECK_INT(row->label, ret, row->ret);
		CHECK_INT(row->label, addr.family, row->family);
		if (ret < 0)
			continue;
		CHECK_STR(row->label,
			  portguard_addr_to_str(&addr, buf, sizeof(buf)),
			  row->text);
		if (addr.family == 4) {
			/* unused bytes are zero */
			static const uint8_t zero[12] = { 0 };
			CHECK_INT(row->label,
				  memcmp(addr.bytes + 4, zero, 12), 0);
		}
	}
}

struct bytes_row {
	const char *label;
	int family;
	uint8_t bytes[16];
	int family_r;
	const char *text;
};

static const struct bytes_row bytes_rows[] = {
	{ "ipv4", 4, { 192, 0, 2, 7 }, 4, "192.0.2.7" },
	{ "ipv6", 6, { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 }, 6, "2001:db8::1" },
	{ "v4-mapped", 6,
	  { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3 },
	  4, "10.1.2.3" },
	{ "almost v4-mapped", 6,
	  { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 10, 1, 2, 3 },
	  6, "::1:ffff:a01:203" },
	{ "unknown family", 5, { 1, 2, 3, 4 }, 0, "-" },
};

static void test_addr_from_bytes(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(bytes_rows); i++) {
		const struct bytes_row *row = &bytes_rows[i];
		struct portguard_addr addr;
		char buf[64];

		memset(&addr, 0xaa, sizeof(addr));
		portguard_addr_from_bytes(&addr, row->family, row->bytes);
		CHECK_INT(row->label, addr.family, row->family_r);
		CHECK_STR(row->label,
			  portguard_addr_to_str(&addr, buf, sizeof(buf)),
			  row->text);
	}
}

static void test_addr_to_str_small(void **state)
{
	struct portguard_addr addr;
	char buf[46];

	(void)state;
	assert_int_equal(portguard_addr_parse(
		"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &addr), 0);
	/* the longest form fits into 46 bytes */
	assert_string_equal(portguard_addr_to_str(&addr, buf, sizeof(buf)),
			    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_int_equal(portguard_addr_parse("192.0.2.7", &addr), 0);
	memset(buf, 'Z', sizeof(buf));
	/* too small: empty string, never a truncated address */
	assert_string_equal(portguard_addr_to_str(&addr, buf, 9), "");
	assert_int_equal(buf[1], 'Z');
	assert_string_equal(portguard_addr_to_str(&addr, buf, 10),
			    "192.0.2.7");
	memset(buf, 'Z', sizeof(buf));
	(void)portguard_addr_to_str(&addr, buf, 0);
	assert_int_equal(buf[0], 'Z');
}

/* ---- networks ---- */

struct net_row {
	const char *label;
	const char *input;
	int ret;
	int family;
	/* canonical address (host bits cleared) and prefix */
	const char *addr;
	unsigned int prefix;
};

static const struct net_row net_rows[] = {
	{ "ipv4 /24", "192.0.2.0/24", 0, 4, "192.0.2.0", 24 },
	{ "ipv4 host bits cleared", "192.0.2.7/24", 0, 4, "192.0.2.0", 24 },
	{ "ipv4 odd prefix", "192.0.2.255/25", 0, 4, "192.0.2.128", 25 },
	{ "ipv4 /31", "192.0.2.7/31", 0, 4, "192.0.2.6", 31 },
	{ "ipv4 /1", "200.1.2.3/1", 0, 4, "128.0.0.0", 1 },
	{ "ipv4 /0", "10.20.30.40/0", 0, 4, "0.0.0.0", 0 },
	{ "ipv4 /32", "192.0.2.7/32", 0, 4, "192.0.2.7", 32 },
	{ "ipv4 bare is /32", "192.0.2.7", 0, 4, "192.0.2.7", 32 },
	{ "ipv6 /64", "2001:db8:1:2:3:4:5:6/64", 0, 6, "2001:db8:1:2::", 64 },
	{ "ipv6 /0", "2001:db8::1/0", 0, 6, "::", 0 },
	{ "ipv6 /128", "2001:db8::1/128", 0, 6, "2001:db8::1", 128 },
	{ "ipv6 bare is /128", "2001:db8::1", 0, 6, "2001:db8::1", 128 },
	{ "ipv6 /127", "2001:db8::ff/127", 0, 6, "2001:db8::fe", 127 },
	{ "ipv6 /33", "2001:db8:ffff::/33", 0, 6, "2001:db8:8000::", 33 },
	{ "mapped /120 becomes ipv4 /24", "::ffff:192.0.2.0/120", 0, 4,
	  "192.0.2.0", 24 },
	{ "mapped /96 becomes ipv4 /0", "::ffff:0.0.0.0/96", 0, 4,
	  "0.0.0.0", 0 },
	{ "mapped /128 becomes ipv4 /32", "::ffff:192.0.2.7/128", 0, 4,
	  "192.0.2.7", 32 },
	{ "mapped bare becomes ipv4 /32", "::ffff:192.0.2.7", 0, 4,
	  "192.0.2.7", 32 },
	{ "mapped host bits cleared", "::ffff:192.0.2.77/124", 0, 4,
	  "192.0.2.64", 28 },
	{ "mapped /95 stays ipv6", "::ffff:192.0.2.0/95", 0, 6, "::fffe:0:0",
	  95 },
	{ "ipv4 /33", "10.0.0.0/33", -1, 0, NULL, 0 },
	{ "ipv6 /129", "2001:db8::/129", -1, 0, NULL, 0 },
	{ "mapped /129", "::ffff:192.0.2.0/129", -1, 0, NULL, 0 },
	{ "empty prefix", "1.2.3.4/", -1, 0, NULL, 0 },
	{ "empty address", "/24", -1, 0, NULL, 0 },
	{ "negative prefix", "1.2.3.4/-1", -1, 0, NULL, 0 },
	{ "plus prefix", "1.2.3.4/+8", -1, 0, NULL, 0 },
	{ "leading zero prefix", "1.2.3.4/024", -1, 0, NULL, 0 },
	{ "leading zero prefix 00", "1.2.3.4/00", -1, 0, NULL, 0 },
	{ "hex prefix", "1.2.3.4/0x8", -1, 0, NULL, 0 },
	{ "huge prefix", "1.2.3.4/4294967320", -1, 0, NULL, 0 },
	{ "two slashes", "1.2.3.4/24/8", -1, 0, NULL, 0 },
	{ "netmask form", "1.2.3.0/255.255.255.0", -1, 0, NULL, 0 },
	{ "space in prefix", "1.2.3.4/ 24", -1, 0, NULL, 0 },
	{ "bracketed", "[2001:db8::]/32", -1, 0, NULL, 0 },
	{ "bracketed bare", "[2001:db8::1]", -1, 0, NULL, 0 },
	{ "hostname", "example.org/24", -1, 0, NULL, 0 },
	{ "empty", "", -1, 0, NULL, 0 },
	{ "slash only", "/", -1, 0, NULL, 0 },
};

static void test_net_parse(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(net_rows); i++) {
		const struct net_row *row = &net_rows[i];
		struct portguard_net net;
		const char *error = NULL;
		char buf[64], expected_error[128];
		int ret;

		memset(&net, 0xaa, sizeof(net));
		ret = portguard_net_parse(row->input, &net, &error);
		CHECK_INT(row->label, ret, row->ret);
		if (ret < 0) {
			(void)snprintf(expected_error, sizeof(expected_error),
				       "invalid network '%s'", row->input);
			CHECK_STR(row->label, error, expected_error);
			continue;
		}
		CHECK_INT(row->label, net.addr.family, row->family);
		CHECK_INT(row->label, net.prefix, row->prefix);
		CHECK_STR(row->label,
			  portguard_addr_to_str(&net.addr, buf, sizeof(buf)),
			  row->addr);
	}
}

/* ---- matching ---- */

struct match_row {
	const char *label;
	const char *net;
	const char *addr;
	int expected;
};

static const struct match_row match_rows[] = {
	{ "ipv4 inside", "192.0.2.0/24", "192.0.2.7", 1 },
	{ "ipv4 first", "192.0.2.0/24", "192.0.2.0", 1 },
	{ "ipv4 last", "192.0.2.0/24", "192.0.2.255", 1 },
	{ "ipv4 just below", "192.0.2.0/24", "192.0.1.255", 0 },
	{ "ipv4 just above", "192.0.2.0/24", "192.0.3.0", 0 },
	{ "ipv4 /25 upper half", "192.0.2.128/25", "192.0.2.200", 1 },
	{ "ipv4 /25 lower half", "192.0.2.128/25", "192.0.2.127", 0 },
	{ "ipv4 /0 matches all ipv4", "0.0.0.0/0", "203.0.113.9", 1 },
	{ "ipv4 /0 does not match ipv6", "0.0.0.0/0", "2001:db8::1", 0 },
	{ "ipv4 /32 exact", "192.0.2.7/32", "192.0.2.7", 1 },
	{ "ipv4 /32 other", "192.0.2.7/32", "192.0.2.8", 0 },
	{ "host bits cleared net", "192.0.2.7/24", "192.0.2.99", 1 },
	{ "ipv4 net, v4-mapped client", "192.0.2.0/24", "::ffff:192.0.2.7",
	  1 },
	{ "ipv4 net, v4-mapped client outside", "192.0.2.0/24",
	  "::ffff:198.51.100.7", 0 },
	{ "mapped net, ipv4 client", "::ffff:192.0.2.0/120", "192.0.2.7", 1 },
	{ "mapped net, ipv4 client outside", "::ffff:192.0.2.0/120",
	  "192.0.3.7", 0 },
	{ "mapped net, mapped client", "::ffff:192.0.2.0/120",
	  "::ffff:192.0.2.9", 1 },
	{ "mapped host, ipv4 client", "::ffff:192.0.2.7", "192.0.2.7", 1 },
	{ "ipv6 /64 inside", "2001:db8:1:2::/64", "2001:db8:1:2:ffff::1", 1 },
	{ "ipv6 /64 outside", "2001:db8:1:2::/64", "2001:db8:1:3::1", 0 },
	{ "ipv6 /0 matches ipv6", "::/0", "2001:db8::1", 1 },
	{ "ipv6 /0 does not match ipv4", "::/0", "192.0.2.7", 0 },
	{ "ipv6 /0 does not match v4-mapped", "::/0", "::ffff:192.0.2.7", 0 },
	{ "ipv6 /128 exact", "2001:db8::1/128", "2001:db8::1", 1 },
	{ "ipv6 /128 other", "2001:db8::1/128", "2001:db8::2", 0 },
	{ "ipv6 /127 pair", "2001:db8::fe/127", "2001:db8::ff", 1 },
	{ "ipv6 /33 boundary in", "2001:db8:8000::/33",
	  "2001:db8:ffff::1", 1 },
	{ "ipv6 /33 boundary out", "2001:db8:8000::/33",
	  "2001:db8:7fff::1", 0 },
	{ "ipv4 net vs same bytes ipv6", "32.1.13.184/32", "2001:db8::", 0 },
};

static void test_net_match(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(match_rows); i++) {
		const struct match_row *row = &match_rows[i];
		struct portguard_net net;
		struct portguard_addr addr;
		const char *error;

		CHECK_INT(row->label,
			  portguard_net_parse(row->net, &net, &error), 0);
		CHECK_INT(row->label, portguard_addr_parse(row->addr, &addr),
			  0);
		CHECK_INT(row->label, portguard_net_match(&net, &addr),
			  row->expected);
	}
}

static void test_net_match_unset_addr(void **state)
{
	struct portguard_net net;
	struct portguard_addr addr;
	const char *error;

	(void)state;
	memset(&addr, 0, sizeof(addr));
	assert_int_equal(portguard_net_parse("0.0.0.0/0", &net, &error), 0);
	assert_false(portguard_net_match(&net, &addr));
	assert_int_equal(portguard_net_parse("::/0", &net, &error), 0);
	assert_false(portguard_net_match(&net, &addr));
}

/* ---- lists ---- */

struct list_row {
	const char *label;
	const char *input;
	int ret;
	unsigned int count;
	const char *error;
	/* addresses that must match, and must not (NULL-terminated) */
	const char *in[4];
	const char *out[4];
};

static const struct list_row list_rows[] = {
	{ "empty", "", 0, 0, NULL, { NULL }, { "192.0.2.7", "::1", NULL } },
	{ "NULL", NULL, 0, 0, NULL, { NULL }, { "192.0.2.7", NULL } },
	{ "blanks", " ,\t, ", 0, 0, NULL, { NULL }, { "10.0.0.1", NULL } },
	{ "one", "10.0.0.0/8", 0, 1, NULL, { "10.1.2.3", NULL },
	  { "11.0.0.1", NULL } },
	{ "mixed families and separators",
	  " 10.0.0.0/8,\t2001:db8::/32 ,192.0.2.7 ", 0, 3, NULL,
	  { "10.9.9.9", "2001:db8:5::1", "192.0.2.7", "::ffff:10.0.0.1" },
	  { "192.0.2.8", "2001:db9::1", "11.0.0.1", NULL } },
	{ "duplicates kept once", "10.0.0.0/8 10.1.0.0/8 10.0.0.0/8", 0, 1,
	  NULL, { "10.200.0.1", NULL }, { "9.0.0.1", NULL } },
	{ "mapped duplicate of ipv4", "192.0.2.0/24 ::ffff:192.0.2.0/120", 0,
	  1, NULL, { "192.0.2.1", NULL }, { NULL } },
	{ "bad prefix", "10.0.0.0/8 10.0.0.0/33", -1, 0,
	  "invalid network '10.0.0.0/33'", { NULL }, { NULL } },
	{ "first bad named", "10.0.0.0/8,foo,1.2.3.4/", -1, 0,
	  "invalid network 'foo'", { NULL }, { NULL } },
	{ "semicolon", "10.0.0.0/8;192.0.2.0/24", -1, 0,
	  "invalid network '10.0.0.0/8;192.0.2.0/24'", { NULL }, { NULL } },
};

static void test_netlist(void **state)
{
	unsigned int i, j;

	(void)state;
	for (i = 0; i < N_ELEMENTS(list_rows); i++) {
		const struct list_row *row = &list_rows[i];
		struct portguard_netlist list;
		struct portguard_addr addr;
		const char *error = NULL;
		int ret;

		memset(&list, 0xaa, sizeof(list));
		ret = portguard_netlist_parse(row->input, &list, &error);
		CHECK_INT(row->label, ret, row->ret);
		CHECK_INT(row->label, list.count, row->count);
		if (ret < 0) {
			CHECK_STR(row->label, error, row->error);
			continue;
		}
		for (j = 0; j < 4 && row->in[j] != NULL; j++) {
			CHECK_INT(row->in[j],
				  portguard_addr_parse(row->in[j], &addr), 0);
			if (!portguard_netlist_match(&list, &addr))
				fail_msg("%s: %s should match", row->label,
					 row->in[j]);
		}
		for (j = 0; j < 4 && row->out[j] != NULL; j++) {
			CHECK_INT(row->out[j],
				  portguard_addr_parse(row->out[j], &addr), 0);
			if (portguard_netlist_match(&list, &addr))
				fail_msg("%s: %s should not match",
					 row->label, row->out[j]);
		}
	}
}

struct list_count_row {
	const char *label;
	unsigned int n;
	int ret;
};

static const struct list_count_row list_count_rows[] = {
	{ "64 networks (max)", 64, 0 },
	{ "65 networks", 65, -1 },
};

static void test_netlist_max_count(void **state)
{
	unsigned int i, j;

	(void)state;
	for (i = 0; i < N_ELEMENTS(list_count_rows); i++) {
		const struct list_count_row *row = &list_count_rows[i];
		struct portguard_netlist list;
		const char *error = NULL;
		char input[2048];
		size_t len = 0;
		int ret;

		input[0] = '\0';
		for (j = 0; j < row->n; j++) {
			len += (size_t)snprintf(input + len,
						sizeof(input) - len,
						"10.%u.0.0/16 ", j);
		}
		ret = portguard_netlist_parse(input, &list, &error);
		CHECK_INT(row->label, ret, row->ret);
		if (ret < 0) {
			CHECK_INT(row->label, list.count, 0);
			CHECK_STR(row->label, error,
				  "too many networks (max 64)");
		} else {
			CHECK_INT(row->label, list.count, row->n);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_parse),
		cmocka_unit_test(test_addr_from_bytes),
		cmocka_unit_test(test_addr_to_str_small),
		cmocka_unit_test(test_net_parse),
		cmocka_unit_test(test_net_match),
		cmocka_unit_test(test_net_match_unset_addr),
		cmocka_unit_test(test_netlist),
		cmocka_unit_test(test_netlist_max_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for portguard-tlsver.c */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "test-common.h"

#include "portguard-tlsver.h"

#define USE_LIST "(use ANY, SSLv3, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)"

struct parse_row {
	const char *label;
	const char *name;
	int ret;
	int version;
	const char *error;
};

static const struct parse_row parse_rows[] = {
	{ "ANY", "ANY", 0, PORTGUARD_TLS_ANY, NULL },
	{ "SSLv3", "SSLv3", 0, 0x0300, NULL },
	{ "TLSv1", "TLSv1", 0, 0x0301, NULL },
	{ "TLSv1.1", "TLSv1.1", 0, 0x0302, NULL },
	{ "TLSv1.2", "TLSv1.2", 0, 0x0303, NULL },
	{ "TLSv1.3", "TLSv1.3", 0, 0x0304, NULL },
	{ "unknown TLSv9", "TLSv9", -1, 0,
	  "unknown protocol 'TLSv9' " USE_LIST },
	{ "lowercase", "tlsv1.2", -1, 0,
	  "unknown protocol 'tlsv1.2' " USE_LIST },
	{ "lowercase any", "any", -1, 0, "unknown protocol 'any' " USE_LIST },
	{ "TLSv1.0 spelling", "TLSv1.0", -1, 0,
	  "unknown protocol 'TLSv1.0' " USE_LIST },
	{ "trailing space", "TLSv1.2 ", -1, 0,
	  "unknown protocol 'TLSv1.2 ' " USE_LIST },
	{ "prefix only", "TLSv1.", -1, 0,
	  "unknown protocol 'TLSv1.' " USE_LIST },
	{ "empty", "", -1, 0, "unknown protocol '' " USE_LIST },
	{ "NULL", NULL, -1, 0, "unknown protocol '' " USE_LIST },
};

static void test_tls_version_parse(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(parse_rows); i++) {
		const struct parse_row *row = &parse_rows[i];
		const char *error = NULL;
		int version = -12345, ret;

		ret = portguard_tls_version_parse(row->name, &version, &error);
		CHECK_INT(row->label, ret, row->ret);
		if (ret < 0) {
			CHECK_STR(row->label, error, row->error);
			/* untouched on failure */
			CHECK_INT(row->label, version, -12345);
		} else {
			CHECK_INT(row->label, version, row->version);
		}
	}
}

static void test_tls_version_parse_long_name(void **state)
{
	char name[500];
	const char *error = NULL;
	int version;

	(void)state;
	memset(name, 'A', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(portguard_tls_version_parse(name, &version, &error),
			 -1);
	assert_non_null(error);
	assert_true(strncmp(error, "unknown protocol 'AAAA", 22) == 0);
	assert_non_null(strstr(error, USE_LIST));
}

struct name_row {
	const char *label;
	int version;
	const char *name;
};

static const struct name_row name_rows[] = {
	{ "0", 0, "ANY" },
	{ "SSLv3", PORTGUARD_TLS_SSLV3, "SSLv3" },
	{ "TLSv1", PORTGUARD_TLS_V1, "TLSv1" },
	{ "TLSv1.1", PORTGUARD_TLS_V1_1, "TLSv1.1" },
	{ "TLSv1.2", PORTGUARD_TLS_V1_2, "TLSv1.2" },
	{ "TLSv1.3", PORTGUARD_TLS_V1_3, "TLSv1.3" },
	{ "SSLv2", 0x0002, "unknown" },
	{ "future", 0x0305, "unknown" },
	{ "DTLS", 0xfefd, "unknown" },
	{ "negative", -1, "unknown" },
};

static void test_tls_version_name(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(name_rows); i++) {
		const struct name_row *row = &name_rows[i];

		CHECK_STR(row->label, portguard_tls_version_name(row->version),
			  row->name);
	}
}

static void test_tls_version_roundtrip_order(void **state)
{
	static const char *const names[] = {
		"SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"
	};
	int prev = PORTGUARD_TLS_ANY, version;
	const char *error;
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(names); i++) {
		CHECK_INT(names[i],
			  portguard_tls_version_parse(names[i], &version,
						      &error), 0);
		/* ordered like the wire versions */
		if (version <= prev)
			fail_msg("%s: 0x%04x not above 0x%04x", names[i],
				 (unsigned int)version, (unsigned int)prev);
		CHECK_STR(names[i], portguard_tls_version_name(version),
			  names[i]);
		prev = version;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_version_parse),
		cmocka_unit_test(test_tls_version_parse_long_name),
		cmocka_unit_test(test_tls_version_name),
		cmocka_unit_test(test_tls_version_roundtrip_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

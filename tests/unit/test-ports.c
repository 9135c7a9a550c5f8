/* Unit tests for portguard-ports.c */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "test-common.h"

#include "portguard-ports.h"

struct parse_row {
	const char *label;
	const char *input;
	int ret;
	unsigned int count;
	uint16_t ports[8];
	/* expected error text when ret < 0 */
	const char *error;
};

static const struct parse_row parse_rows[] = {
	{ "empty", "", 0, 0, { 0 }, NULL },
	{ "NULL", NULL, 0, 0, { 0 }, NULL },
	{ "blanks only", " \t , ,, \t", 0, 0, { 0 }, NULL },
	{ "single", "465", 0, 1, { 465 }, NULL },
	{ "space separated", "465 10465", 0, 2, { 465, 10465 }, NULL },
	{ "comma separated", "465,10465", 0, 2, { 465, 10465 }, NULL },
	{ "mixed runs", " \t465 ,\t, 587,,10465\t ", 0, 3,
	  { 465, 587, 10465 }, NULL },
	{ "lowest port", "1", 0, 1, { 1 }, NULL },
	{ "highest port", "65535", 0, 1, { 65535 }, NULL },
	{ "duplicates kept once", "465 587 465,587", 0, 2, { 465, 587 },
	  NULL },
	{ "port 0", "0", -1, 0, { 0 }, "port 0 out of range (1..65535)" },
	{ "port 65536", "65536", -1, 0, { 0 },
	  "port 65536 out of range (1..65535)" },
	{ "overflow", "99999999999999999999", -1, 0, { 0 },
	  "port 99999999999999999999 out of range (1..65535)" },
	{ "ulong wrap", "18446744073709551617", -1, 0, { 0 },
	  "port 18446744073709551617 out of range (1..65535)" },
	{ "word", "abc", -1, 0, { 0 }, "invalid port 'abc'" },
	{ "plus sign", "+5", -1, 0, { 0 }, "invalid port '+5'" },
	{ "negative", "-5", -1, 0, { 0 }, "invalid port '-5'" },
	{ "hex", "0x1d", -1, 0, { 0 }, "invalid port '0x1d'" },
	{ "trailing garbage", "465abc", -1, 0, { 0 },
	  "invalid port '465abc'" },
	{ "leading zero", "0465", -1, 0, { 0 },
	  "invalid port '0465' (leading zero)" },
	{ "double zero", "00", -1, 0, { 0 },
	  "invalid port '00' (leading zero)" },
	{ "semicolon separator", "465;587", -1, 0, { 0 },
	  "invalid port '465;587'" },
	{ "newline not a separator", "465\n587", -1, 0, { 0 },
	  "invalid port '465\n587'" },
	{ "bad element after good ones", "465 587 x", -1, 0, { 0 },
	  "invalid port 'x'" },
	{ "first bad element named", "465 y 0", -1, 0, { 0 },
	  "invalid port 'y'" },
	{ "decimal point", "465.0", -1, 0, { 0 }, "invalid port '465.0'" },
};

static void test_ports_parse(void **state)
{
	unsigned int i, j;

	(void)state;
	for (i = 0; i < N_ELEMENTS(parse_rows); i++) {
		const struct parse_row *row = &parse_rows[i];
		struct portguard_ports ports;
		const char *error = NULL;
		int ret;

		memset(&ports, 0xaa, sizeof(ports));
		ret = portguard_ports_parse(row->input, &ports, &error);
		CHECK_INT(row->label, ret, row->ret);
		CHECK_INT(row->label, ports.count, row->count);
		if (ret < 0) {
			CHECK_STR(row->label, error, row->error);
			continue;
		}
		for (j = 0; j < row->count; j++)
			CHECK_INT(row->label, ports.ports[j], row->ports[j]);
	}
}

static void test_ports_error_long_token(void **state)
{
	char input[300];
	struct portguard_ports ports;
	const char *error = NULL;

	(void)state;
	memset(input, 'x', sizeof(input) - 1);
	input[sizeof(input) - 1] = '\0';
	CHECK_INT("long token", portguard_ports_parse(input, &ports, &error),
		  -1);
	CHECK_INT("long token", ports.count, 0);
	/* the quoted element is bounded */
	CHECK_INT("long token", strncmp(error, "invalid port 'xxxx", 18), 0);
	CHECK_INT("long token", strlen(error) < 100, 1);
}

struct count_row {
	const char *label;
	unsigned int n;
	/* extra duplicate of the first port appended */
	int add_duplicate;
	int ret;
};

static const struct count_row count_rows[] = {
	{ "31 ports", 31, 0, 0 },
	{ "32 ports (max)", 32, 0, 0 },
	{ "33 ports", 33, 0, -1 },
	{ "32 ports + duplicate", 32, 1, 0 },
	{ "100 ports", 100, 0, -1 },
};

static void test_ports_max_count(void **state)
{
	unsigned int i, j;

	(void)state;
	for (i = 0; i < N_ELEMENTS(count_rows); i++) {
		const struct count_row *row = &count_rows[i];
		struct portguard_ports ports;
		const char *error = NULL;
		char input[1024];
		size_t len = 0;
		int ret;

		input[0] = '\0';
		for (j = 0; j < row->n; j++) {
			len += (size_t)snprintf(input + len,
						sizeof(input) - len,
						"%u%s", 1000 + j,
						j % 2 == 0 ? "," : " ");
		}
		if (row->add_duplicate)
			(void)snprintf(input + len, sizeof(input) - len,
				       "1000");

		ret = portguard_ports_parse(input, &ports, &error);
		CHECK_INT(row->label, ret, row->ret);
		if (ret < 0) {
			CHECK_INT(row->label, ports.count, 0);
			CHECK_STR(row->label, error, "too many ports (max 32)");
			continue;
		}
		CHECK_INT(row->label, ports.count, row->n);
		for (j = 0; j < row->n; j++)
			CHECK_INT(row->label, ports.ports[j], 1000 + j);
	}
}

struct contain_row {
	const char *label;
	const char *list;
	unsigned int port;
	int expected;
};

static const struct contain_row contain_rows[] = {
	{ "present", "465 587", 587, 1 },
	{ "absent", "465 587", 25, 0 },
	{ "empty list", "", 465, 0 },
	{ "port 0 never", "465", 0, 0 },
	{ "port 1", "1", 1, 1 },
	{ "port 65535", "65535", 65535, 1 },
	{ "65536 does not wrap to 0", "65535", 65536, 0 },
	{ "65536+465 does not wrap to 465", "465", 65536 + 465, 0 },
};

static void test_ports_contain(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(contain_rows); i++) {
		const struct contain_row *row = &contain_rows[i];
		struct portguard_ports ports;
		const char *error;

		CHECK_INT(row->label,
			  portguard_ports_parse(row->list, &ports, &error), 0);
		CHECK_INT(row->label,
			  portguard_ports_contain(&ports, row->port),
			  row->expected);
	}
}

struct intersect_row {
	const char *label;
	const char *a, *b;
	int expected;
	unsigned int port;
};

static const struct intersect_row intersect_rows[] = {
	{ "disjoint", "465 10465", "587 25", 0, 0 },
	{ "one common", "465", "587 465", 1, 465 },
	{ "first common of a", "10465 465", "465 10465", 1, 10465 },
	{ "both empty", "", "", 0, 0 },
	{ "a empty", "", "465", 0, 0 },
	{ "b empty", "465", "", 0, 0 },
};

static void test_ports_intersect(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(intersect_rows); i++) {
		const struct intersect_row *row = &intersect_rows[i];
		struct portguard_ports a, b;
		const char *error;
		unsigned int port = 12345;
		bool ret;

		CHECK_INT(row->label, portguard_ports_parse(row->a, &a, &error),
			  0);
		CHECK_INT(row->label, portguard_ports_parse(row->b, &b, &error),
			  0);
		ret = portguard_ports_intersect(&a, &b, &port);
		CHECK_INT(row->label, ret, row->expected);
		if (ret)
			CHECK_INT(row->label, port, row->port);
		/* symmetric answer */
		CHECK_INT(row->label, portguard_ports_intersect(&b, &a, NULL),
			  row->expected);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ports_parse),
		cmocka_unit_test(test_ports_error_long_token),
		cmocka_unit_test(test_ports_max_count),
		cmocka_unit_test(test_ports_contain),
		cmocka_unit_test(test_ports_intersect),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for portguard-policy.c */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "test-common.h"

#include "portguard-policy.h"
#include "portguard-tlsver.h"

/* ---- init ---- */

struct init_row {
	const char *label;
	const char *implicit, *starttls, *exempt, *min_proto;
	int ret;
	const char *error;
	unsigned int implicit_count, starttls_count, exempt_count;
	int min_version;
};

static const struct init_row init_rows[] = {
	{ "typical", "465", "587", "127.0.0.0/8 ::1", "TLSv1.2",
	  0, NULL, 1, 1, 2, PORTGUARD_TLS_V1_2 },
	{ "all empty", "", "", "", "ANY", 0, NULL, 0, 0, 0, PORTGUARD_TLS_ANY },
	{ "all NULL", NULL, NULL, NULL, NULL, 0, NULL, 0, 0, 0,
	  PORTGUARD_TLS_ANY },
	{ "empty min protocol is ANY", "465", "", "", "", 0, NULL, 1, 0, 0,
	  PORTGUARD_TLS_ANY },
	{ "several ports", "465 10465", "587,2587", "", "TLSv1.3",
	  0, NULL, 2, 2, 0, PORTGUARD_TLS_V1_3 },
	{ "bad implicit port", "465 abc", "587", "", "ANY", -1,
	  "portguard_implicit_tls_ports: invalid port 'abc'",
	  0, 0, 0, 0 },
	{ "bad starttls port", "465", "abc", "", "ANY", -1,
	  "portguard_starttls_ports: invalid port 'abc'",
	  0, 0, 0, 0 },
	{ "starttls port 0", "465", "0", "", "ANY", -1,
	  "portguard_starttls_ports: port 0 out of range (1..65535)",
	  0, 0, 0, 0 },
	{ "too many implicit ports",
	  "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 "
	  "25 26 27 28 29 30 31 32 33", "", "", "ANY", -1,
	  "portguard_implicit_tls_ports: too many ports (max 32)",
	  0, 0, 0, 0 },
	{ "overlapping ports", "465 10465", "587 465", "", "ANY", -1,
	  "portguard_implicit_tls_ports and portguard_starttls_ports "
	  "both list port 465",
	  0, 0, 0, 0 },
	{ "bad network", "465", "587", "10.0.0.0/33", "ANY", -1,
	  "portguard_tls_exempt_networks: invalid network '10.0.0.0/33'",
	  0, 0, 0, 0 },
	{ "bracketed network", "465", "587", "[::1]", "ANY", -1,
	  "portguard_tls_exempt_networks: invalid network '[::1]'",
	  0, 0, 0, 0 },
	{ "bad min protocol", "465", "587", "", "TLSv9", -1,
	  "portguard_min_tls_protocol: unknown protocol 'TLSv9' "
	  "(use ANY, SSLv3, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)",
	  0, 0, 0, 0 },
	{ "first error wins", "x", "y", "z", "w", -1,
	  "portguard_implicit_tls_ports: invalid port 'x'",
	  0, 0, 0, 0 },
};

static void test_policy_init(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(init_rows); i++) {
		const struct init_row *row = &init_rows[i];
		struct portguard_policy policy;
		const char *error = NULL;
		int ret;

		memset(&policy, 0xaa, sizeof(policy));
		ret = portguard_policy_init(&policy, row->implicit,
					    row->starttls, row->exempt,
					    row->min_proto, true, &error);
		CHECK_INT(row->label, ret, row->ret);
		if (ret < 0) {
			CHECK_STR(row->label, error, row->error);
			/* nothing half-initialized is left behind */
			CHECK_INT(row->label, policy.implicit_tls_ports.count,
				  0);
			CHECK_INT(row->label, policy.starttls_ports.count, 0);
			CHECK_INT(row->label,
				  policy.tls_exempt_networks.count, 0);
			continue;
		}
		CHECK_INT(row->label, policy.implicit_tls_ports.count,
			  row->implicit_count);
		CHECK_INT(row->label, policy.starttls_ports.count,
			  row->starttls_count);
		CHECK_INT(row->label, policy.tls_exempt_networks.count,
			  row->exempt_count);
		CHECK_INT(row->label, policy.min_tls_version,
			  row->min_version);
		CHECK_INT(row->label, policy.log_tls, 1);
	}
}

static void test_policy_init_log_tls(void **state)
{
	struct portguard_policy policy;
	const char *error;

	(void)state;
	assert_int_equal(portguard_policy_init(&policy, "465", "587", "",
					       "ANY", false, &error), 0);
	assert_false(policy.log_tls);
	assert_int_equal(portguard_policy_init(&policy, "465", "587", "",
					       "ANY", true, &error), 0);
	assert_true(policy.log_tls);
}

/* ---- roles and verdicts ---- */

static struct portguard_policy test_policy;

static int setup_policy(void **state)
{
	const char *error;

	(void)state;
	if (portguard_policy_init(&test_policy, "465 10465", "587",
				  "127.0.0.0/8 ::1 192.0.2.0/24", "TLSv1.2",
				  true, &error) < 0) {
		print_error("policy init failed: %s\n", error);
		return -1;
	}
	return 0;
}

struct role_row {
	const char *label;
	unsigned int port;
	enum portguard_port_role role;
	const char *name;
};

static const struct role_row role_rows[] = {
	{ "implicit 465", 465, PORTGUARD_ROLE_IMPLICIT_TLS, "implicit" },
	{ "implicit 10465", 10465, PORTGUARD_ROLE_IMPLICIT_TLS, "implicit" },
	{ "starttls 587", 587, PORTGUARD_ROLE_STARTTLS, "starttls" },
	{ "smtp 25", 25, PORTGUARD_ROLE_NONE, "none" },
	{ "port 0", 0, PORTGUARD_ROLE_NONE, "none" },
	{ "465 + 65536 does not wrap", 465 + 65536, PORTGUARD_ROLE_NONE,
	  "none" },
};

static void test_policy_port_role(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(role_rows); i++) {
		const struct role_row *row = &role_rows[i];
		enum portguard_port_role role =
			portguard_policy_port_role(&test_policy, row->port);

		CHECK_INT(row->label, role, row->role);
		CHECK_STR(row->label, portguard_port_role_name(role),
			  row->name);
	}
}

static void test_policy_role_name(void **state)
{
	(void)state;
	assert_string_equal(portguard_port_role_name(PORTGUARD_ROLE_NONE),
			    "none");
	assert_string_equal(
		portguard_port_role_name(PORTGUARD_ROLE_IMPLICIT_TLS),
		"implicit");
	assert_string_equal(portguard_port_role_name(PORTGUARD_ROLE_STARTTLS),
			    "starttls");
	assert_string_equal(
		portguard_port_role_name((enum portguard_port_role)42),
		"unknown");
}

struct verdict_row {
	const char *label;
	unsigned int port;
	bool tls_from_start;
	/* NULL: no remote address known */
	const char *remote;
	enum portguard_connect_verdict verdict;
};

#define OUTSIDE_V4 "203.0.113.5"
#define OUTSIDE_V6 "2001:db8::5"

static const struct verdict_row verdict_rows[] = {
	/* implicit TLS port */
	{ "implicit, tls", 465, true, OUTSIDE_V4, PORTGUARD_CONNECT_TLS },
	{ "implicit, plaintext", 465, false, OUTSIDE_V4,
	  PORTGUARD_CONNECT_REFUSE_PLAINTEXT },
	{ "implicit, plaintext, ipv6", 10465, false, OUTSIDE_V6,
	  PORTGUARD_CONNECT_REFUSE_PLAINTEXT },
	{ "implicit, tls, exempt", 465, true, "127.0.0.1",
	  PORTGUARD_CONNECT_EXEMPT },
	{ "implicit, plaintext, exempt", 465, false, "127.0.0.1",
	  PORTGUARD_CONNECT_EXEMPT },
	{ "implicit, plaintext, exempt ::1", 465, false, "::1",
	  PORTGUARD_CONNECT_EXEMPT },
	{ "implicit, plaintext, no remote", 465, false, NULL,
	  PORTGUARD_CONNECT_REFUSE_PLAINTEXT },
	/* STARTTLS port */
	{ "starttls, plaintext", 587, false, OUTSIDE_V4,
	  PORTGUARD_CONNECT_REQUIRE_STARTTLS },
	{ "starttls, plaintext, ipv6", 587, false, OUTSIDE_V6,
	  PORTGUARD_CONNECT_REQUIRE_STARTTLS },
	{ "starttls, tls from proxy", 587, true, OUTSIDE_V4,
	  PORTGUARD_CONNECT_TLS },
	{ "starttls, plaintext, exempt", 587, false, "192.0.2.44",
	  PORTGUARD_CONNECT_EXEMPT },
	{ "starttls, tls, exempt", 587, true, "192.0.2.44",
	  PORTGUARD_CONNECT_EXEMPT },
	{ "starttls, exempt via v4-mapped", 587, false, "::ffff:127.0.0.1",
	  PORTGUARD_CONNECT_EXEMPT },
	{ "starttls, just outside exempt net", 587, false, "192.0.3.1",
	  PORTGUARD_CONNECT_REQUIRE_STARTTLS },
	{ "starttls, plaintext, no remote", 587, false, NULL,
	  PORTGUARD_CONNECT_REQUIRE_STARTTLS },
	/* unguarded port */
	{ "unguarded, plaintext", 25, false, OUTSIDE_V4,
	  PORTGUARD_CONNECT_UNGUARDED },
	{ "unguarded, tls", 993, true, OUTSIDE_V4,
	  PORTGUARD_CONNECT_UNGUARDED },
	{ "unguarded, exempt client", 25, false, "127.0.0.1",
	  PORTGUARD_CONNECT_UNGUARDED },
	{ "unguarded, port 0", 0, false, OUTSIDE_V4,
	  PORTGUARD_CONNECT_UNGUARDED },
};

static void test_policy_on_connect(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(verdict_rows); i++) {
		const struct verdict_row *row = &verdict_rows[i];
		struct portguard_addr addr;
		const struct portguard_addr *remote = NULL;

		if (row->remote != NULL) {
			CHECK_INT(row->label,
				  portguard_addr_parse(row->remote, &addr), 0);
			remote = &addr;
		}
		CHECK_INT(row->label,
			  portguard_policy_on_connect(&test_policy, row->port,
						      row->tls_from_start,
						      remote),
			  row->verdict);
	}
}

static void test_policy_on_connect_no_exempt(void **state)
{
	struct portguard_policy policy;
	struct portguard_addr addr;
	const char *error;

	(void)state;
	assert_int_equal(portguard_policy_init(&policy, "465", "587", "",
					       "ANY", false, &error), 0);
	assert_int_equal(portguard_addr_parse("127.0.0.1", &addr), 0);
	assert_int_equal(portguard_policy_on_connect(&policy, 465, false,
						     &addr),
			 PORTGUARD_CONNECT_REFUSE_PLAINTEXT);
	assert_int_equal(portguard_policy_on_connect(&policy, 587, false,
						     &addr),
			 PORTGUARD_CONNECT_REQUIRE_STARTTLS);
}

/* ---- minimum TLS version ---- */

struct version_row {
	const char *label;
	const char *min_proto;
	int version;
	bool ok;
};

static const struct version_row version_rows[] = {
	{ "ANY, unknown", "ANY", 0, true },
	{ "ANY, SSLv3", "ANY", PORTGUARD_TLS_SSLV3, true },
	{ "ANY, TLSv1.3", "ANY", PORTGUARD_TLS_V1_3, true },
	{ "TLSv1.2, TLSv1.1", "TLSv1.2", PORTGUARD_TLS_V1_1, false },
	{ "TLSv1.2, TLSv1.2", "TLSv1.2", PORTGUARD_TLS_V1_2, true },
	{ "TLSv1.2, TLSv1.3", "TLSv1.2", PORTGUARD_TLS_V1_3, true },
	{ "TLSv1.2, unknown", "TLSv1.2", 0, false },
	{ "TLSv1.2, SSLv3", "TLSv1.2", PORTGUARD_TLS_SSLV3, false },
	{ "TLSv1.3, TLSv1.2", "TLSv1.3", PORTGUARD_TLS_V1_2, false },
	{ "TLSv1.3, TLSv1.3", "TLSv1.3", PORTGUARD_TLS_V1_3, true },
	{ "TLSv1, TLSv1", "TLSv1", PORTGUARD_TLS_V1, true },
	{ "TLSv1, SSLv3", "TLSv1", PORTGUARD_TLS_SSLV3, false },
	{ "SSLv3, SSLv3", "SSLv3", PORTGUARD_TLS_SSLV3, true },
	{ "SSLv3, unknown", "SSLv3", 0, false },
	{ "SSLv3, negative", "SSLv3", -1, false },
	{ "TLSv1.1, TLSv1.1", "TLSv1.1", PORTGUARD_TLS_V1_1, true },
	{ "TLSv1.1, TLSv1", "TLSv1.1", PORTGUARD_TLS_V1, false },
};

static void test_policy_tls_version_ok(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(version_rows); i++) {
		const struct version_row *row = &version_rows[i];
		struct portguard_policy policy;
		const char *error;

		CHECK_INT(row->label,
			  portguard_policy_init(&policy, "465", "587", "",
						row->min_proto, false, &error),
			  0);
		CHECK_INT(row->label,
			  portguard_policy_tls_version_ok(&policy,
							  row->version),
			  row->ok);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_init),
		cmocka_unit_test(test_policy_init_log_tls),
		cmocka_unit_test_setup(test_policy_port_role, setup_policy),
		cmocka_unit_test(test_policy_role_name),
		cmocka_unit_test_setup(test_policy_on_connect, setup_policy),
		cmocka_unit_test(test_policy_on_connect_no_exempt),
		cmocka_unit_test(test_policy_tls_version_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* libFuzzer harness: port lists (portguard-ports.h), TLS protocol names
   (portguard-tlsver.h) and the policy settings built from them
   (portguard-policy.h).

   The input, cut at the first three '\n', is used as: the whole input as
   one port list and one protocol name, and the four lines as the
   implicit TLS ports, STARTTLS ports, exempt networks and minimum
   protocol of a policy. Port lists are checked against a reference
   parser written here, and a parsed list must survive a round trip
   through its text form. */

#include "fuzz-common.h"
#include "portguard-ports.h"
#include "portguard-tlsver.h"
#include "portguard-policy.h"

static bool ref_is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

/* Reference: 0 with the list (first occurrence order), -1 if invalid. */
static int ref_ports_parse(const char *s, uint16_t out[PORTGUARD_PORTS_MAX],
			   unsigned int *count_r)
{
	unsigned int count = 0, i;

	*count_r = 0;
	while (*s != '\0') {
		const char *tok;
		size_t len, j;
		unsigned long v = 0;

		if (ref_is_sep(*s)) {
			s++;
			continue;
		}
		tok = s;
		while (*s != '\0' && !ref_is_sep(*s))
			s++;
		len = (size_t)(s - tok);
		for (j = 0; j < len; j++) {
			if (tok[j] < '0' || tok[j] > '9')
				return -1;
		}
		if (len > 1 && tok[0] == '0')
			return -1;
		if (len > 5)
			return -1; /* >= 100000, or a leading zero */
		for (j = 0; j < len; j++)
			v = v * 10 + (unsigned long)(tok[j] - '0');
		if (v < 1 || v > 65535)
			return -1;
		for (i = 0; i < count; i++) {
			if (out[i] == v)
				break;
		}
		if (i < count)
			continue;
		if (count == PORTGUARD_PORTS_MAX)
			return -1;
		out[count++] = (uint16_t)v;
	}
	*count_r = count;
	return 0;
}

static void check_error(const char *error)
{
	FUZZ_CHECK(error != NULL, "no error string");
	FUZZ_CHECK(strlen(error) < 320, "error string too long: %zu",
		   strlen(error));
}

static void check_ports(const char *str, struct portguard_ports *ports_r,
			int *ret_r)
{
	struct portguard_ports ports, again;
	uint16_t ref[PORTGUARD_PORTS_MAX];
	unsigned int ref_count, i, j, port;
	const char *error = NULL;
	char text[PORTGUARD_PORTS_MAX * 7 + 1];
	size_t pos = 0;
	int ret, ref_ret;

	memset(&ports, 0xa5, sizeof(ports));
	ret = portguard_ports_parse(str, &ports, &error);
	ref_ret = ref_ports_parse(str, ref, &ref_count);
	FUZZ_CHECK(ret == ref_ret, "parse returned %d, reference %d for '%s'",
		   ret, ref_ret, str);
	*ret_r = ret;
	*ports_r = ports;
	if (ret < 0) {
		check_error(error);
		FUZZ_CHECK(ports.count == 0, "list not emptied on error");
		return;
	}
	FUZZ_CHECK(ports.count == ref_count, "count %u, reference %u",
		   ports.count, ref_count);
	for (i = 0; i < ports.count; i++) {
		FUZZ_CHECK(ports.ports[i] == ref[i], "port %u: %u != %u", i,
			   ports.ports[i], ref[i]);
		FUZZ_CHECK(ports.ports[i] >= 1, "port 0 in list");
		FUZZ_CHECK(portguard_ports_contain(&ports, ports.ports[i]),
			   "listed port %u not contained", ports.ports[i]);
		for (j = 0; j < i; j++)
			FUZZ_CHECK(ports.ports[j] != ports.ports[i],
				   "duplicate port %u", ports.ports[i]);
		pos += (size_t)snprintf(text + pos, sizeof(text) - pos,
					"%s%u", i == 0 ? "" : (i % 2 ? "," : " "),
					ports.ports[i]);
	}
	text[pos] = '\0';
	FUZZ_CHECK(!portguard_ports_contain(&ports, 0), "port 0 contained");
	FUZZ_CHECK(!portguard_ports_contain(&ports, 65536),
		   "port 65536 contained");
	/* round trip through the text form */
	FUZZ_CHECK(portguard_ports_parse(text, &again, &error) == 0,
		   "reparse of '%s' failed: %s", text, error);
	FUZZ_CHECK(again.count == ports.count &&
		   memcmp(again.ports, ports.ports,
			  ports.count * sizeof(ports.ports[0])) == 0,
		   "round trip of '%s' changed the list", text);
	/* contain() agrees with the list for ports near the listed ones */
	for (i = 0; i < ports.count; i++) {
		for (port = ports.ports[i] - 1U; port <= ports.ports[i] + 1U;
		     port++) {
			bool listed = false;

			for (j = 0; j < ports.count; j++)
				listed = listed || ports.ports[j] == port;
			FUZZ_CHECK(portguard_ports_contain(&ports, port) ==
				   listed, "contain(%u) wrong", port);
		}
	}
}

static void check_tlsver(const char *name)
{
	static const char *const names[] = {
		"ANY", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"
	};
	const char *error = NULL;
	int version = -12345, ret, again;
	unsigned int i;
	bool known = false;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		known = known || strcmp(name, names[i]) == 0;
	ret = portguard_tls_version_parse(name, &version, &error);
	FUZZ_CHECK((ret == 0) == known, "parse('%s') = %d", name, ret);
	if (ret < 0) {
		check_error(error);
		return;
	}
	FUZZ_CHECK(strcmp(portguard_tls_version_name(version), name) == 0,
		   "name(%d) != '%s'", version, name);
	FUZZ_CHECK(portguard_tls_version_parse(
			portguard_tls_version_name(version), &again,
			&error) == 0 && again == version, "round trip");
	FUZZ_CHECK(version == 0 || (version >= PORTGUARD_TLS_SSLV3 &&
				    version <= PORTGUARD_TLS_V1_3),
		   "version %#x out of range", version);
}

static void check_policy(char *fields[4], uint16_t extra_port,
			 const uint8_t addr_bytes[16], bool v6)
{
	struct portguard_policy policy;
	struct portguard_ports a, b;
	struct portguard_netlist nets;
	struct portguard_addr addr;
	const char *error = NULL;
	int ret, ret_a, ret_b, ret_n, ver;
	unsigned int i, common;
	bool expect_ok;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	check_ports(fields[0], &a, &ret_a);
	check_ports(fields[1], &b, &ret_b);
	ret_n = portguard_netlist_parse(fields[2], &nets, &error);
	expect_ok = ret_a == 0 && ret_b == 0 && ret_n == 0 &&
		!portguard_ports_intersect(&a, &b, &common) &&
		(fields[3][0] == '\0' ||
		 portguard_tls_version_parse(fields[3], &ver, &error) == 0);

	ret = portguard_policy_init(&policy, fields[0], fields[1], fields[2],
				    fields[3], true, &error);
	FUZZ_CHECK((ret == 0) == expect_ok, "policy_init returned %d", ret);
	if (ret < 0) {
		check_error(error);
		return;
	}
	portguard_addr_from_bytes(&addr, v6 ? 6 : 4, addr_bytes);
	for (i = 0; i <= a.count + b.count; i++) {
		unsigned int port = i < a.count ? a.ports[i] :
			i < a.count + b.count ? b.ports[i - a.count] :
			extra_port;
		enum portguard_port_role role =
			portguard_policy_port_role(&policy, port);
		enum portguard_connect_verdict v;

		FUZZ_CHECK(role == (portguard_ports_contain(&a, port) ?
				    PORTGUARD_ROLE_IMPLICIT_TLS :
				    portguard_ports_contain(&b, port) ?
				    PORTGUARD_ROLE_STARTTLS :
				    PORTGUARD_ROLE_NONE),
			   "role of port %u", port);
		v = portguard_policy_on_connect(&policy, port, false, &addr);
		if (role == PORTGUARD_ROLE_NONE)
			FUZZ_CHECK(v == PORTGUARD_CONNECT_UNGUARDED, "verdict");
		else if (portguard_netlist_match(&nets, &addr))
			FUZZ_CHECK(v == PORTGUARD_CONNECT_EXEMPT, "verdict");
		else
			FUZZ_CHECK(v == (role == PORTGUARD_ROLE_IMPLICIT_TLS ?
					 PORTGUARD_CONNECT_REFUSE_PLAINTEXT :
					 PORTGUARD_CONNECT_REQUIRE_STARTTLS),
				   "verdict");
	}
	FUZZ_CHECK(portguard_policy_tls_version_ok(&policy,
						   PORTGUARD_TLS_V1_3),
		   "TLSv1.3 refused");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct portguard_ports ports;
	char *str = fuzz_cstr(data, size), *copy, *fields[4], *p;
	uint8_t addr_bytes[16] = { 0 };
	uint16_t extra_port = 0;
	unsigned int i;
	int ret;

	check_ports(str, &ports, &ret);
	check_tlsver(str);

	/* the four policy fields; the tail of the input after a fifth line
	   gives a port and an address to classify */
	copy = strdup(str);
	if (copy == NULL)
		abort();
	p = copy;
	for (i = 0; i < 4; i++) {
		fields[i] = p;
		p = p == NULL ? NULL : strchr(p, '\n');
		if (p != NULL)
			*p++ = '\0';
		if (fields[i] == NULL)
			fields[i] = (char *)"";
	}
	if (p != NULL) {
		size_t n = strlen(p);

		memcpy(&extra_port, p, n < 2 ? n : 2);
		memcpy(addr_bytes, p + (n < 2 ? n : 2),
		       n < 2 ? 0 : (n - 2 < 16 ? n - 2 : 16));
	}
	check_policy(fields, extra_port, addr_bytes, (extra_port & 1) != 0);
	free(copy);
	free(str);
	return 0;
}

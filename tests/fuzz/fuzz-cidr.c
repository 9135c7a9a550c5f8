/* libFuzzer harness: addresses and CIDR network lists (portguard-cidr.h).

   The whole input is parsed as an address, a network and a network list;
   the first 17 bytes also give a raw address (family bit + 16 bytes) to
   match against what was parsed. Checked:
   - parse results against inet_pton() (the address text) and a reference
     prefix parser written here; v4-mapped IPv6 becomes IPv4;
   - families are 4 or 6, IPv4 leaves bytes 4..15 zero, prefixes are in
     range, host bits are cleared;
   - addr_to_str/net text round trips give the same value;
   - net_match() against a bit-by-bit reference, netlist_match() against
     the networks one by one, and a network always matches its own
     address;
   - lists have no duplicates, at most PORTGUARD_NETS_MAX entries, and
     equal the elements parsed one at a time. */

#include "fuzz-common.h"
#include "portguard-cidr.h"

#include <arpa/inet.h>
#include <sys/socket.h>

static const uint8_t v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static bool ref_is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

static int ref_bit(const uint8_t *bytes, unsigned int i)
{
	return (bytes[i / 8] >> (7 - i % 8)) & 1;
}

static bool ref_match(const struct portguard_net *net,
		      const struct portguard_addr *addr)
{
	unsigned int i;

	if (addr->family == 0 || addr->family != net->addr.family)
		return false;
	for (i = 0; i < net->prefix; i++) {
		if (ref_bit(net->addr.bytes, i) != ref_bit(addr->bytes, i))
			return false;
	}
	return true;
}

/* Reference address parse of exactly len bytes, without normalizing. */
static int ref_addr_raw(const char *s, size_t len, int *family_r,
			uint8_t bytes[16])
{
	char text[64];

	memset(bytes, 0, 16);
	if (len == 0 || len >= sizeof(text) || memchr(s, '\0', len) != NULL)
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, bytes) == 1) {
		*family_r = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, text, bytes) == 1) {
		*family_r = 6;
		return 0;
	}
	return -1;
}

static void check_addr_valid(const struct portguard_addr *addr)
{
	static const uint8_t zero[12];

	FUZZ_CHECK(addr->family == 4 || addr->family == 6, "family %u",
		   addr->family);
	if (addr->family == 4)
		FUZZ_CHECK(memcmp(addr->bytes + 4, zero, 12) == 0,
			   "IPv4 with junk in bytes 4..15");
	else
		FUZZ_CHECK(memcmp(addr->bytes, v4mapped, 12) != 0,
			   "v4-mapped IPv6 not normalized");
}

static void check_net_valid(const struct portguard_net *net)
{
	unsigned int bits, i;

	check_addr_valid(&net->addr);
	bits = net->addr.family == 4 ? 32 : 128;
	FUZZ_CHECK(net->prefix <= bits, "prefix %u > %u", net->prefix, bits);
	for (i = net->prefix; i < bits; i++)
		FUZZ_CHECK(ref_bit(net->addr.bytes, i) == 0,
			   "host bit %u set in /%u", i, net->prefix);
	FUZZ_CHECK(portguard_net_match(net, &net->addr),
		   "network does not match its own address");
	FUZZ_CHECK(ref_match(net, &net->addr), "reference self match");
}

static bool net_equal(const struct portguard_net *a,
		      const struct portguard_net *b)
{
	return a->prefix == b->prefix && a->addr.family == b->addr.family &&
		memcmp(a->addr.bytes, b->addr.bytes, 16) == 0;
}

/* Reference network parse of exactly len bytes. */
static int ref_net(const char *s, size_t len, struct portguard_net *net_r)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash == NULL ? len : (size_t)(slash - s);
	uint8_t bytes[16];
	unsigned int prefix, max, i;
	int family;

	memset(net_r, 0, sizeof(*net_r));
	if (ref_addr_raw(s, alen, &family, bytes) < 0)
		return -1;
	max = family == 4 ? 32 : 128;
	if (slash == NULL) {
		prefix = max;
	} else {
		const char *p = slash + 1;
		size_t plen = len - alen - 1;

		if (plen == 0 || plen > 3 || (plen > 1 && p[0] == '0'))
			return -1;
		prefix = 0;
		for (i = 0; i < plen; i++) {
			if (p[i] < '0' || p[i] > '9')
				return -1;
			prefix = prefix * 10 + (unsigned int)(p[i] - '0');
		}
		if (prefix > max)
			return -1;
	}
	if (family == 6 && prefix >= 96 &&
	    memcmp(bytes, v4mapped, 12) == 0) {
		family = 4;
		memmove(bytes, bytes + 12, 4);
		memset(bytes + 4, 0, 12);
		prefix -= 96;
	}
	net_r->addr.family = (uint8_t)family;
	memcpy(net_r->addr.bytes, bytes, 16);
	net_r->prefix = (uint8_t)prefix;
	for (i = prefix; i < (family == 4 ? 32U : 128U); i++)
		net_r->addr.bytes[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
	return 0;
}

static void check_addr(const char *str, const struct portguard_addr *probe)
{
	struct portguard_addr addr, again;
	struct portguard_net host;
	uint8_t bytes[16];
	char text[46];
	int family, ret, ref;
	unsigned int size;

	memset(&addr, 0xa5, sizeof(addr));
	ret = portguard_addr_parse(str, &addr);
	ref = ref_addr_raw(str, strlen(str), &family, bytes);
	FUZZ_CHECK(ret == ref, "addr_parse('%s') = %d, reference %d", str,
		   ret, ref);
	if (ret < 0) {
		FUZZ_CHECK(addr.family == 0, "family set on failure");
		return;
	}
	check_addr_valid(&addr);
	if (family == 6 && memcmp(bytes, v4mapped, 12) == 0)
		FUZZ_CHECK(addr.family == 4 &&
			   memcmp(addr.bytes, bytes + 12, 4) == 0,
			   "v4-mapped not normalized");
	else
		FUZZ_CHECK(addr.family == family &&
			   memcmp(addr.bytes, bytes, 16) == 0,
			   "addr differs from inet_pton");

	portguard_addr_to_str(&addr, text, sizeof(text));
	FUZZ_CHECK(portguard_addr_parse(text, &again) == 0 &&
		   again.family == addr.family &&
		   memcmp(again.bytes, addr.bytes, 16) == 0,
		   "addr round trip '%s' -> '%s'", str, text);
	/* short buffers: the whole text or "" */
	for (size = 0; size <= strlen(text) + 1; size++) {
		char *buf = malloc(size == 0 ? 1 : size);

		if (buf == NULL)
			abort();
		portguard_addr_to_str(&addr, buf, size);
		if (size > 0) {
			FUZZ_CHECK(size > strlen(text) ?
				   strcmp(buf, text) == 0 : buf[0] == '\0',
				   "to_str(size %u) = '%s'", size, buf);
		}
		free(buf);
	}

	/* as a host route */
	host.addr = addr;
	host.prefix = addr.family == 4 ? 32 : 128;
	FUZZ_CHECK(portguard_net_match(&host, &addr), "host route");
	FUZZ_CHECK(portguard_net_match(&host, probe) == ref_match(&host, probe),
		   "host route match");
}

static void check_net(const char *str, const struct portguard_addr *probe)
{
	struct portguard_net net, ref, again;
	const char *error = NULL;
	char addr_text[46], text[64];
	int ret, ref_ret;

	memset(&net, 0xa5, sizeof(net));
	ret = portguard_net_parse(str, &net, &error);
	ref_ret = ref_net(str, strlen(str), &ref);
	FUZZ_CHECK(ret == ref_ret, "net_parse('%s') = %d, reference %d", str,
		   ret, ref_ret);
	if (ret < 0) {
		FUZZ_CHECK(error != NULL && strlen(error) < 160, "error");
		FUZZ_CHECK(net.addr.family == 0 && net.prefix == 0,
			   "net not cleared on error");
		return;
	}
	check_net_valid(&net);
	FUZZ_CHECK(net_equal(&net, &ref), "net_parse('%s') differs from the "
		   "reference", str);
	portguard_addr_to_str(&net.addr, addr_text, sizeof(addr_text));
	(void)snprintf(text, sizeof(text), "%s/%u", addr_text, net.prefix);
	FUZZ_CHECK(portguard_net_parse(text, &again, &error) == 0 &&
		   net_equal(&net, &again), "net round trip '%s' -> '%s'",
		   str, text);
	FUZZ_CHECK(portguard_net_match(&net, probe) == ref_match(&net, probe),
		   "net_match('%s', probe)", str);
}

static void check_netlist(const char *str, const struct portguard_addr *probe)
{
	static struct portguard_netlist list;
	struct portguard_net ref[PORTGUARD_NETS_MAX];
	unsigned int ref_count = 0, i, j;
	const char *p = str, *error = NULL;
	int ret, ref_ret = 0;
	bool any = false;

	/* reference: tokenize and parse each element */
	while (*p != '\0') {
		const char *tok;
		struct portguard_net net;

		if (ref_is_sep(*p)) {
			p++;
			continue;
		}
		tok = p;
		while (*p != '\0' && !ref_is_sep(*p))
			p++;
		if (ref_net(tok, (size_t)(p - tok), &net) < 0) {
			ref_ret = -1;
			break;
		}
		for (i = 0; i < ref_count; i++) {
			if (net_equal(&ref[i], &net))
				break;
		}
		if (i < ref_count)
			continue;
		if (ref_count == PORTGUARD_NETS_MAX) {
			ref_ret = -1;
			break;
		}
		ref[ref_count++] = net;
	}

	memset(&list, 0xa5, sizeof(list));
	ret = portguard_netlist_parse(str, &list, &error);
	FUZZ_CHECK(ret == ref_ret, "netlist_parse = %d, reference %d", ret,
		   ref_ret);
	if (ret < 0) {
		FUZZ_CHECK(error != NULL && strlen(error) < 160, "error");
		FUZZ_CHECK(list.count == 0, "list not emptied on error");
		return;
	}
	FUZZ_CHECK(list.count == ref_count, "count %u, reference %u",
		   list.count, ref_count);
	for (i = 0; i < list.count; i++) {
		check_net_valid(&list.nets[i]);
		FUZZ_CHECK(net_equal(&list.nets[i], &ref[i]), "element %u", i);
		for (j = 0; j < i; j++)
			FUZZ_CHECK(!net_equal(&list.nets[i], &list.nets[j]),
				   "duplicate element %u", i);
		FUZZ_CHECK(portguard_netlist_match(&list, &list.nets[i].addr),
			   "list does not match element %u", i);
		any = any || ref_match(&list.nets[i], probe);
	}
	FUZZ_CHECK(portguard_netlist_match(&list, probe) == any,
		   "netlist_match(probe)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct portguard_addr probe;
	uint8_t raw[17] = { 0 };
	char *str = fuzz_cstr(data, size);

	memcpy(raw, data, size < sizeof(raw) ? size : sizeof(raw));
	portguard_addr_from_bytes(&probe, (raw[0] & 1) ? 6 : 4, raw + 1);
	check_addr_valid(&probe);

	check_addr(str, &probe);
	check_net(str, &probe);
	check_netlist(str, &probe);
	free(str);
	return 0;
}

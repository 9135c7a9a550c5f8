/* IP addresses and CIDR network lists. Pure C, no Dovecot headers. */

#include "portguard-cidr.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

/* Longest address text we try to parse; INET6_ADDRSTRLEN is 46 and
   anything longer cannot be an address. */
#define PORTGUARD_ADDR_TEXT_MAX 64
/* Longest part of a bad element quoted back in an error message. */
#define PORTGUARD_NET_ERR_TOKEN_MAX 80

static char portguard_net_errbuf[160];

static const uint8_t portguard_addr_v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static bool portguard_net_is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

static bool portguard_addr_is_v4mapped(const uint8_t bytes[16])
{
	return memcmp(bytes, portguard_addr_v4mapped_prefix,
		      sizeof(portguard_addr_v4mapped_prefix)) == 0;
}

static const char *
portguard_net_error(const char *token, size_t len)
{
	int shown = len > PORTGUARD_NET_ERR_TOKEN_MAX ?
		PORTGUARD_NET_ERR_TOKEN_MAX : (int)len;

	(void)snprintf(portguard_net_errbuf, sizeof(portguard_net_errbuf),
		       "invalid network '%.*s'", shown, token);
	return portguard_net_errbuf;
}

void portguard_addr_from_bytes(struct portguard_addr *addr_r, int family,
			       const void *bytes)
{
	const uint8_t *b = bytes;

	memset(addr_r, 0, sizeof(*addr_r));
	if (family == 4) {
		addr_r->family = 4;
		memcpy(addr_r->bytes, b, 4);
	} else if (family == 6) {
		if (portguard_addr_is_v4mapped(b)) {
			addr_r->family = 4;
			memcpy(addr_r->bytes, b + 12, 4);
		} else {
			addr_r->family = 6;
			memcpy(addr_r->bytes, b, 16);
		}
	}
}

/* Parse len bytes of str as a literal address without normalizing v4-mapped
   addresses. *raw_family_r is 4 or 6. */
static int
portguard_addr_parse_raw(const char *str, size_t len, int *raw_family_r,
			 uint8_t bytes_r[16])
{
	char text[PORTGUARD_ADDR_TEXT_MAX];

	if (len == 0 || len >= sizeof(text))
		return -1;
	memcpy(text, str, len);
	text[len] = '\0';

	memset(bytes_r, 0, 16);
	if (inet_pton(AF_INET, text, bytes_r) == 1) {
		*raw_family_r = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, text, bytes_r) == 1) {
		*raw_family_r = 6;
		return 0;
	}
	return -1;
}

int portguard_addr_parse(const char *str, struct portguard_addr *addr_r)
{
	uint8_t bytes[16];
	int family;

	memset(addr_r, 0, sizeof(*addr_r));
	if (str == NULL ||
	    portguard_addr_parse_raw(str, strlen(str), &family, bytes) < 0)
		return -1;
	portguard_addr_from_bytes(addr_r, family, bytes);
	return 0;
}

const char *portguard_addr_to_str(const struct portguard_addr *addr,
				  char *buf, unsigned int size)
{
	char text[PORTGUARD_ADDR_TEXT_MAX];
	const char *ret = NULL;
	size_t len;

	if (size == 0)
		return buf;
	if (addr->family == 4)
		ret = inet_ntop(AF_INET, addr->bytes, text, sizeof(text));
	else if (addr->family == 6)
		ret = inet_ntop(AF_INET6, addr->bytes, text, sizeof(text));
	else
		ret = strcpy(text, "-");
	/* an address cut short would be misleading: write "" instead */
	len = ret == NULL ? 0 : strlen(text);
	if (len >= size)
		len = 0;
	memcpy(buf, text, len);
	buf[len] = '\0';
	return buf;
}

/* Parse a prefix length: decimal digits, no sign, no leading zero
   ("0" itself is fine), at most max. */
static int
portguard_net_parse_prefix(const char *str, size_t len, unsigned int max,
			   unsigned int *prefix_r)
{
	unsigned int value = 0;
	size_t i;

	if (len == 0 || len > 3 || (len > 1 && str[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (str[i] < '0' || str[i] > '9')
			return -1;
		value = value * 10 + (unsigned int)(str[i] - '0');
	}
	if (value > max)
		return -1;
	*prefix_r = value;
	return 0;
}

static void portguard_net_clear_host_bits(struct portguard_net *net)
{
	unsigned int bits = net->addr.family == 4 ? 32 : 128;
	unsigned int i;

	for (i = net->prefix; i < bits; i++)
		net->addr.bytes[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
}

/* Parse exactly len bytes of str as "addr" or "addr/prefix". */
static int
portguard_net_parse_n(const char *str, size_t len, struct portguard_net *net_r)
{
	const char *slash = memchr(str, '/', len);
	size_t addr_len = slash == NULL ? len : (size_t)(slash - str);
	uint8_t bytes[16];
	unsigned int prefix, max;
	int family;

	memset(net_r, 0, sizeof(*net_r));
	if (portguard_addr_parse_raw(str, addr_len, &family, bytes) < 0)
		return -1;
	max = family == 4 ? 32 : 128;
	if (slash == NULL)
		prefix = max;
	else if (portguard_net_parse_prefix(slash + 1, len - addr_len - 1,
					    max, &prefix) < 0)
		return -1;

	if (family == 6 && prefix >= 96 && portguard_addr_is_v4mapped(bytes)) {
		/* ::ffff:192.0.2.0/120 == 192.0.2.0/24 */
		net_r->addr.family = 4;
		memcpy(net_r->addr.bytes, bytes + 12, 4);
		prefix -= 96;
	} else {
		net_r->addr.family = (uint8_t)family;
		memcpy(net_r->addr.bytes, bytes, family == 4 ? 4 : 16);
	}
	net_r->prefix = (uint8_t)prefix;
	portguard_net_clear_host_bits(net_r);
	return 0;
}

int portguard_net_parse(const char *str, struct portguard_net *net_r,
			const char **error_r)
{
	if (str == NULL)
		str = "";
	if (portguard_net_parse_n(str, strlen(str), net_r) < 0) {
		memset(net_r, 0, sizeof(*net_r));
		*error_r = portguard_net_error(str, strlen(str));
		return -1;
	}
	return 0;
}

static bool portguard_net_equals(const struct portguard_net *a,
				 const struct portguard_net *b)
{
	return a->prefix == b->prefix && a->addr.family == b->addr.family &&
		memcmp(a->addr.bytes, b->addr.bytes,
		       sizeof(a->addr.bytes)) == 0;
}

int portguard_netlist_parse(const char *str, struct portguard_netlist *list_r,
			    const char **error_r)
{
	const char *p = str == NULL ? "" : str;
	struct portguard_net net;
	unsigned int i;

	memset(list_r, 0, sizeof(*list_r));
	for (;;) {
		const char *start;
		size_t len;

		while (portguard_net_is_sep(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && !portguard_net_is_sep(*p))
			p++;
		len = (size_t)(p - start);

		if (portguard_net_parse_n(start, len, &net) < 0) {
			memset(list_r, 0, sizeof(*list_r));
			*error_r = portguard_net_error(start, len);
			return -1;
		}
		for (i = 0; i < list_r->count; i++) {
			if (portguard_net_equals(&list_r->nets[i], &net))
				break;
		}
		if (i < list_r->count)
			continue; /* duplicate */
		if (list_r->count >= PORTGUARD_NETS_MAX) {
			memset(list_r, 0, sizeof(*list_r));
			(void)snprintf(portguard_net_errbuf,
				       sizeof(portguard_net_errbuf),
				       "too many networks (max %d)",
				       PORTGUARD_NETS_MAX);
			*error_r = portguard_net_errbuf;
			return -1;
		}
		list_r->nets[list_r->count++] = net;
	}
	return 0;
}

bool portguard_net_match(const struct portguard_net *net,
			 const struct portguard_addr *addr)
{
	unsigned int full, rest;

	if (addr->family == 0 || net->addr.family != addr->family)
		return false;
	if (net->prefix > (addr->family == 4 ? 32 : 128))
		return false;
	full = net->prefix / 8;
	rest = net->prefix % 8;
	if (memcmp(net->addr.bytes, addr->bytes, full) != 0)
		return false;
	if (rest != 0) {
		uint8_t mask = (uint8_t)(0xff00u >> rest);

		if ((net->addr.bytes[full] & mask) !=
		    (addr->bytes[full] & mask))
			return false;
	}
	return true;
}

bool portguard_netlist_match(const struct portguard_netlist *list,
			     const struct portguard_addr *addr)
{
	unsigned int i;

	for (i = 0; i < list->count; i++) {
		if (portguard_net_match(&list->nets[i], addr))
			return true;
	}
	return false;
}

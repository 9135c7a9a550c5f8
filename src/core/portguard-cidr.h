#ifndef PORTGUARD_CIDR_H
#define PORTGUARD_CIDR_H

/* IP addresses and CIDR network lists. Pure C, no Dovecot headers.
   IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are normalized to IPv4
   everywhere, so "192.0.2.0/24" matches a client seen as ::ffff:192.0.2.7
   and "::ffff:192.0.2.0/120" is the same network as "192.0.2.0/24". */

#include <stdbool.h>
#include <stdint.h>

#define PORTGUARD_NETS_MAX 64

struct portguard_addr {
	/* 4 or 6; 0 = unset */
	uint8_t family;
	/* network byte order; IPv4 uses the first 4 bytes, rest zero */
	uint8_t bytes[16];
};

struct portguard_net {
	struct portguard_addr addr; /* host bits cleared */
	uint8_t prefix; /* 0..32 for IPv4, 0..128 for IPv6 */
};

struct portguard_netlist {
	unsigned int count;
	struct portguard_net nets[PORTGUARD_NETS_MAX];
};

/* Build an address from raw bytes (4 bytes for family 4, 16 for family 6).
   A v4-mapped IPv6 address becomes IPv4. */
void portguard_addr_from_bytes(struct portguard_addr *addr_r, int family,
			       const void *bytes);

/* Parse a literal IPv4 or IPv6 address (no brackets, no prefix).
   Returns 0, or -1 if it is not an address. */
int portguard_addr_parse(const char *str, struct portguard_addr *addr_r);

/* Write the address in its usual text form ("192.0.2.7", "2001:db8::1")
   into buf; returns buf. size >= 46 is always enough. */
const char *portguard_addr_to_str(const struct portguard_addr *addr,
				  char *buf, unsigned int size);

/* Parse "addr" or "addr/prefix". A bare address is a host route (/32 or
   /128). Host bits below the prefix are cleared (192.0.2.7/24 is accepted
   as 192.0.2.0/24). A mapped IPv6 network ::ffff:0:0/96 or longer becomes
   the IPv4 network with prefix - 96. Returns 0, or -1 with *error_r. */
int portguard_net_parse(const char *str, struct portguard_net *net_r,
			const char **error_r);

/* Parse a list of networks separated by spaces and/or commas. An empty
   string gives an empty list. Returns 0, or -1 with *error_r naming the
   first bad element; *list_r is then empty. */
int portguard_netlist_parse(const char *str, struct portguard_netlist *list_r,
			    const char **error_r);

/* Return true if addr lies inside net (families must agree after
   normalization). */
bool portguard_net_match(const struct portguard_net *net,
			 const struct portguard_addr *addr);

/* Return true if addr lies inside any network of the list. */
bool portguard_netlist_match(const struct portguard_netlist *list,
			     const struct portguard_addr *addr);

#endif

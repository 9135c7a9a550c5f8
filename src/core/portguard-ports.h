#ifndef PORTGUARD_PORTS_H
#define PORTGUARD_PORTS_H

/* Port lists: "465", "465 10465", "465,10465". Pure C, no Dovecot headers. */

#include <stdbool.h>
#include <stdint.h>

#define PORTGUARD_PORTS_MAX 32

struct portguard_ports {
	unsigned int count;
	uint16_t ports[PORTGUARD_PORTS_MAX];
};

/* Parse a list of TCP ports (1..65535) separated by spaces and/or commas.
   An empty or all-blank string gives an empty list. Duplicates are kept
   once. Returns 0, or -1 with *error_r set (a static string describing the
   first bad element, e.g. "invalid port 'abc'", "port 0 out of range",
   "too many ports (max 32)"); *ports_r is then empty. */
int portguard_ports_parse(const char *str, struct portguard_ports *ports_r,
			  const char **error_r);

/* Return true if port is in the list. */
bool portguard_ports_contain(const struct portguard_ports *ports,
			     unsigned int port);

/* Return true if the two lists have a port in common; *port_r gets the
   first one. */
bool portguard_ports_intersect(const struct portguard_ports *a,
			       const struct portguard_ports *b,
			       unsigned int *port_r);

#endif

#ifndef PORTGUARD_POLICY_H
#define PORTGUARD_POLICY_H

/* Encrypted-port rules as named predicates: what to do with a connection
   given its local port, how it arrived and where it came from. Pure C, no
   Dovecot headers; the login glue feeds it facts and carries out the
   verdict. */

#include <stdbool.h>
#include "portguard-ports.h"
#include "portguard-cidr.h"

enum portguard_port_role {
	/* not guarded: portguard leaves the connection alone */
	PORTGUARD_ROLE_NONE = 0,
	/* RFC 8314 implicit TLS ("submissions", 465) */
	PORTGUARD_ROLE_IMPLICIT_TLS,
	/* RFC 3207/6409 STARTTLS submission (587) */
	PORTGUARD_ROLE_STARTTLS,
};

enum portguard_connect_verdict {
	/* not a guarded port */
	PORTGUARD_CONNECT_UNGUARDED = 0,
	/* guarded and already TLS (implicit TLS port, TLS from byte one) */
	PORTGUARD_CONNECT_TLS,
	/* STARTTLS port, plaintext so far: hide and refuse AUTH until TLS */
	PORTGUARD_CONNECT_REQUIRE_STARTTLS,
	/* client is in portguard_tls_exempt_networks: no TLS rule applies */
	PORTGUARD_CONNECT_EXEMPT,
	/* implicit TLS port reached without TLS: refuse with 421 4.7.0 */
	PORTGUARD_CONNECT_REFUSE_PLAINTEXT,
};

struct portguard_policy {
	struct portguard_ports implicit_tls_ports;
	struct portguard_ports starttls_ports;
	struct portguard_netlist tls_exempt_networks;
	/* PORTGUARD_TLS_* minimum; PORTGUARD_TLS_ANY = no minimum */
	int min_tls_version;
	bool log_tls;
};

/* Parse the textual settings into *policy_r. Each error names the setting
   key ("portguard_starttls_ports: invalid port 'x'"). A port listed in both
   port lists is an error. Returns 0 or -1 with *error_r (static buffer,
   valid until the next call). */
int portguard_policy_init(struct portguard_policy *policy_r,
			  const char *implicit_tls_ports,
			  const char *starttls_ports,
			  const char *tls_exempt_networks,
			  const char *min_tls_protocol,
			  bool log_tls, const char **error_r);

/* Role of a local port. */
enum portguard_port_role
portguard_policy_port_role(const struct portguard_policy *policy,
			   unsigned int local_port);

/* Verdict for a new connection: local_port, whether it is TLS from the
   first byte (implicit TLS listener, or TLS terminated by a trusted
   HAProxy), and the client's address. */
enum portguard_connect_verdict
portguard_policy_on_connect(const struct portguard_policy *policy,
			    unsigned int local_port, bool tls_from_start,
			    const struct portguard_addr *remote);

/* True if a negotiated TLS version (PORTGUARD_TLS_*) is acceptable on a
   guarded port. An unknown version (0) is refused when a minimum is set. */
bool portguard_policy_tls_version_ok(const struct portguard_policy *policy,
				     int version);

/* Stable names for log fields and event fields. */
const char *portguard_port_role_name(enum portguard_port_role role);

#endif

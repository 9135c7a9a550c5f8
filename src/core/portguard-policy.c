/* Encrypted-port rules as named predicates. Pure C, no Dovecot headers. */

#include "portguard-policy.h"
#include "portguard-tlsver.h"

#include <stdio.h>
#include <string.h>

static char portguard_policy_errbuf[320];

static const char *
portguard_policy_error(const char *key, const char *error)
{
	(void)snprintf(portguard_policy_errbuf,
		       sizeof(portguard_policy_errbuf), "%s: %s", key, error);
	return portguard_policy_errbuf;
}

int portguard_policy_init(struct portguard_policy *policy_r,
			  const char *implicit_tls_ports,
			  const char *starttls_ports,
			  const char *tls_exempt_networks,
			  const char *min_tls_protocol,
			  bool log_tls, const char **error_r)
{
	const char *error;
	unsigned int port;

	memset(policy_r, 0, sizeof(*policy_r));
	if (portguard_ports_parse(implicit_tls_ports,
				  &policy_r->implicit_tls_ports, &error) < 0) {
		*error_r = portguard_policy_error(
			"portguard_implicit_tls_ports", error);
		goto failed;
	}
	if (portguard_ports_parse(starttls_ports,
				  &policy_r->starttls_ports, &error) < 0) {
		*error_r = portguard_policy_error(
			"portguard_starttls_ports", error);
		goto failed;
	}
	if (portguard_ports_intersect(&policy_r->implicit_tls_ports,
				      &policy_r->starttls_ports, &port)) {
		(void)snprintf(portguard_policy_errbuf,
			       sizeof(portguard_policy_errbuf),
			       "portguard_implicit_tls_ports and "
			       "portguard_starttls_ports both list port %u",
			       port);
		*error_r = portguard_policy_errbuf;
		goto failed;
	}
	if (portguard_netlist_parse(tls_exempt_networks,
				    &policy_r->tls_exempt_networks,
				    &error) < 0) {
		*error_r = portguard_policy_error(
			"portguard_tls_exempt_networks", error);
		goto failed;
	}
	/* unset or empty: no minimum, like "ANY" */
	if (min_tls_protocol == NULL || min_tls_protocol[0] == '\0')
		policy_r->min_tls_version = PORTGUARD_TLS_ANY;
	else if (portguard_tls_version_parse(min_tls_protocol,
					     &policy_r->min_tls_version,
					     &error) < 0) {
		*error_r = portguard_policy_error(
			"portguard_min_tls_protocol", error);
		goto failed;
	}
	policy_r->log_tls = log_tls;
	return 0;

failed:
	memset(policy_r, 0, sizeof(*policy_r));
	return -1;
}

enum portguard_port_role
portguard_policy_port_role(const struct portguard_policy *policy,
			   unsigned int local_port)
{
	if (portguard_ports_contain(&policy->implicit_tls_ports, local_port))
		return PORTGUARD_ROLE_IMPLICIT_TLS;
	if (portguard_ports_contain(&policy->starttls_ports, local_port))
		return PORTGUARD_ROLE_STARTTLS;
	return PORTGUARD_ROLE_NONE;
}

enum portguard_connect_verdict
portguard_policy_on_connect(const struct portguard_policy *policy,
			    unsigned int local_port, bool tls_from_start,
			    const struct portguard_addr *remote)
{
	enum portguard_port_role role =
		portguard_policy_port_role(policy, local_port);

	if (role == PORTGUARD_ROLE_NONE)
		return PORTGUARD_CONNECT_UNGUARDED;
	if (remote != NULL &&
	    portguard_netlist_match(&policy->tls_exempt_networks, remote))
		return PORTGUARD_CONNECT_EXEMPT;
	if (tls_from_start)
		return PORTGUARD_CONNECT_TLS;
	return role == PORTGUARD_ROLE_IMPLICIT_TLS ?
		PORTGUARD_CONNECT_REFUSE_PLAINTEXT :
		PORTGUARD_CONNECT_REQUIRE_STARTTLS;
}

bool portguard_policy_tls_version_ok(const struct portguard_policy *policy,
				     int version)
{
	if (policy->min_tls_version == PORTGUARD_TLS_ANY)
		return true;
	if (version <= 0)
		return false;
	return version >= policy->min_tls_version;
}

const char *portguard_port_role_name(enum portguard_port_role role)
{
	switch (role) {
	case PORTGUARD_ROLE_NONE:
		return "none";
	case PORTGUARD_ROLE_IMPLICIT_TLS:
		return "implicit";
	case PORTGUARD_ROLE_STARTTLS:
		return "starttls";
	}
	return "unknown";
}

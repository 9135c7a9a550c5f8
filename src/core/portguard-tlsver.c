/* TLS protocol versions by name. Pure C, no Dovecot headers. */

#include "portguard-tlsver.h"

#include <stdio.h>
#include <string.h>

/* Longest part of a bad name quoted back in an error message. */
#define PORTGUARD_TLS_ERR_NAME_MAX 64

struct portguard_tls_version_entry {
	const char *name;
	int version;
};

static const struct portguard_tls_version_entry portguard_tls_versions[] = {
	{ "ANY", PORTGUARD_TLS_ANY },
	{ "SSLv3", PORTGUARD_TLS_SSLV3 },
	{ "TLSv1", PORTGUARD_TLS_V1 },
	{ "TLSv1.1", PORTGUARD_TLS_V1_1 },
	{ "TLSv1.2", PORTGUARD_TLS_V1_2 },
	{ "TLSv1.3", PORTGUARD_TLS_V1_3 },
};

#define PORTGUARD_TLS_VERSION_COUNT \
	(sizeof(portguard_tls_versions) / sizeof(portguard_tls_versions[0]))

static char portguard_tls_version_errbuf[160];

int portguard_tls_version_parse(const char *name, int *version_r,
				const char **error_r)
{
	size_t i, len;

	if (name == NULL)
		name = "";
	for (i = 0; i < PORTGUARD_TLS_VERSION_COUNT; i++) {
		if (strcmp(name, portguard_tls_versions[i].name) == 0) {
			*version_r = portguard_tls_versions[i].version;
			return 0;
		}
	}
	len = strlen(name);
	(void)snprintf(portguard_tls_version_errbuf,
		       sizeof(portguard_tls_version_errbuf),
		       "unknown protocol '%.*s' "
		       "(use ANY, SSLv3, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)",
		       len > PORTGUARD_TLS_ERR_NAME_MAX ?
		       PORTGUARD_TLS_ERR_NAME_MAX : (int)len, name);
	*error_r = portguard_tls_version_errbuf;
	return -1;
}

const char *portguard_tls_version_name(int version)
{
	size_t i;

	for (i = 0; i < PORTGUARD_TLS_VERSION_COUNT; i++) {
		if (portguard_tls_versions[i].version == version)
			return portguard_tls_versions[i].name;
	}
	return "unknown";
}

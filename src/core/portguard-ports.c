/* Port lists: "465", "465 10465", "465,10465". Pure C, no Dovecot headers. */

#include "portguard-ports.h"

#include <stdio.h>
#include <string.h>

/* Longest part of a bad element quoted back in an error message. */
#define PORTGUARD_PORTS_ERR_TOKEN_MAX 64

static char portguard_ports_errbuf[128];

static bool portguard_ports_is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

static int portguard_ports_token_len(size_t len)
{
	return len > PORTGUARD_PORTS_ERR_TOKEN_MAX ?
		PORTGUARD_PORTS_ERR_TOKEN_MAX : (int)len;
}

/* Parse one element: decimal digits only, no sign, no leading zero, value
   1..65535. Returns 0 with *port_r, or -1 with *error_r. */
static int
portguard_ports_parse_one(const char *token, size_t len, uint16_t *port_r,
			  const char **error_r)
{
	unsigned long value = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (token[i] < '0' || token[i] > '9') {
			(void)snprintf(portguard_ports_errbuf,
				       sizeof(portguard_ports_errbuf),
				       "invalid port '%.*s'",
				       portguard_ports_token_len(len), token);
			*error_r = portguard_ports_errbuf;
			return -1;
		}
	}
	if (len > 1 && token[0] == '0') {
		/* "0465": not octal, not silently decimal either */
		(void)snprintf(portguard_ports_errbuf,
			       sizeof(portguard_ports_errbuf),
			       "invalid port '%.*s' (leading zero)",
			       portguard_ports_token_len(len), token);
		*error_r = portguard_ports_errbuf;
		return -1;
	}
	for (i = 0; i < len; i++) {
		value = value * 10 + (unsigned long)(token[i] - '0');
		if (value > 65535)
			break;
	}
	if (value < 1 || value > 65535) {
		(void)snprintf(portguard_ports_errbuf,
			       sizeof(portguard_ports_errbuf),
			       "port %.*s out of range (1..65535)",
			       portguard_ports_token_len(len), token);
		*error_r = portguard_ports_errbuf;
		return -1;
	}
	*port_r = (uint16_t)value;
	return 0;
}

int portguard_ports_parse(const char *str, struct portguard_ports *ports_r,
			  const char **error_r)
{
	const char *p = str == NULL ? "" : str;
	uint16_t port;

	memset(ports_r, 0, sizeof(*ports_r));
	for (;;) {
		const char *start;
		size_t len;

		while (portguard_ports_is_sep(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && !portguard_ports_is_sep(*p))
			p++;
		len = (size_t)(p - start);

		if (portguard_ports_parse_one(start, len, &port, error_r) < 0) {
			memset(ports_r, 0, sizeof(*ports_r));
			return -1;
		}
		if (portguard_ports_contain(ports_r, port))
			continue;
		if (ports_r->count >= PORTGUARD_PORTS_MAX) {
			memset(ports_r, 0, sizeof(*ports_r));
			(void)snprintf(portguard_ports_errbuf,
				       sizeof(portguard_ports_errbuf),
				       "too many ports (max %d)",
				       PORTGUARD_PORTS_MAX);
			*error_r = portguard_ports_errbuf;
			return -1;
		}
		ports_r->ports[ports_r->count++] = port;
	}
	return 0;
}

bool portguard_ports_contain(const struct portguard_ports *ports,
			     unsigned int port)
{
	unsigned int i;

	if (port == 0 || port > 65535)
		return false;
	for (i = 0; i < ports->count; i++) {
		if (ports->ports[i] == port)
			return true;
	}
	return false;
}

bool portguard_ports_intersect(const struct portguard_ports *a,
			       const struct portguard_ports *b,
			       unsigned int *port_r)
{
	unsigned int i;

	for (i = 0; i < a->count; i++) {
		if (portguard_ports_contain(b, a->ports[i])) {
			if (port_r != NULL)
				*port_r = a->ports[i];
			return true;
		}
	}
	return false;
}

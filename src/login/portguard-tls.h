#ifndef PORTGUARD_TLS_H
#define PORTGUARD_TLS_H

/* Facts about an established TLS session, read from OpenSSL. */

struct ssl_iostream;

struct portguard_tls_facts {
	/* wire version (PORTGUARD_TLS_*), 0 if unknown */
	int version;
	const char *proto;
	const char *cipher;
	int bits;
	/* key exchange group ("x25519"), NULL if none/unknown */
	const char *group;
	/* client-supplied, untrusted; NULL if absent */
	const char *sni;
	const char *alpn;
	const char *client_cert;
	bool resumed;
};

/* Read the facts of ssl_io's session. Works from the handshake callback
   on (before Dovecot marks the stream handshaked). Strings are allocated
   from the data stack. */
void portguard_tls_get_facts(struct ssl_iostream *ssl_io,
			     struct portguard_tls_facts *facts_r);

#endif

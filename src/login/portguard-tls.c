/* TLS session facts straight from OpenSSL: Dovecot's ssl_iostream_get_*()
   return nothing until the stream is marked handshaked, which happens only
   after the handshake callback where portguard needs them. */

#include "lib.h"
#include "iostream-openssl.h"
#include "portguard-tlsver.h"
#include "portguard-tls.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

static const char *portguard_tls_group(SSL *ssl)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	int nid = SSL_get_negotiated_group(ssl);
	const char *name;

	if (nid == 0)
		return NULL;
	name = SSL_group_to_name(ssl, nid);
	return name == NULL ? NULL : t_strdup(name);
#else
	(void)ssl;
	return NULL;
#endif
}

static const char *portguard_tls_client_cert(SSL *ssl)
{
	X509 *cert;
	char *subject;
	const char *ret = NULL;

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	cert = SSL_get1_peer_certificate(ssl);
#else
	cert = SSL_get_peer_certificate(ssl);
#endif
	if (cert == NULL)
		return NULL;
	subject = X509_NAME_oneline(X509_get_subject_name(cert), NULL, 0);
	if (subject != NULL) {
		ret = t_strdup(subject);
		OPENSSL_free(subject);
	}
	X509_free(cert);
	return ret;
}

void portguard_tls_get_facts(struct ssl_iostream *ssl_io,
			     struct portguard_tls_facts *facts_r)
{
	SSL *ssl = ssl_io->ssl;
	const SSL_CIPHER *cipher;
	const unsigned char *alpn;
	unsigned int alpn_len;
	const char *sni;
	int alg_bits;

	i_zero(facts_r);
	facts_r->version = SSL_version(ssl);
	facts_r->proto = t_strdup(SSL_get_version(ssl));
	facts_r->bits = -1;
	cipher = SSL_get_current_cipher(ssl);
	if (cipher != NULL) {
		facts_r->cipher = t_strdup(SSL_CIPHER_get_name(cipher));
		facts_r->bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
	}
	facts_r->group = portguard_tls_group(ssl);
	sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	facts_r->sni = sni == NULL ? NULL : t_strdup(sni);
	SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
	if (alpn != NULL && alpn_len > 0)
		facts_r->alpn = t_strndup(alpn, alpn_len);
	facts_r->resumed = SSL_session_reused(ssl) == 1;
	facts_r->client_cert = portguard_tls_client_cert(ssl);
}

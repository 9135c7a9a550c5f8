#ifndef PORTGUARD_TLSVER_H
#define PORTGUARD_TLSVER_H

/* TLS protocol versions by name, ordered like the wire version numbers
   (SSLv3 0x0300 < TLSv1 0x0301 < TLSv1.1 < TLSv1.2 < TLSv1.3 0x0304).
   Pure C, no Dovecot headers. */

#define PORTGUARD_TLS_ANY     0
#define PORTGUARD_TLS_SSLV3   0x0300
#define PORTGUARD_TLS_V1      0x0301
#define PORTGUARD_TLS_V1_1    0x0302
#define PORTGUARD_TLS_V1_2    0x0303
#define PORTGUARD_TLS_V1_3    0x0304

/* Parse a protocol name as Dovecot's ssl_min_protocol spells it: "ANY",
   "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" (case-sensitive, as
   OpenSSL prints them). Returns 0 with *version_r, or -1 with *error_r. */
int portguard_tls_version_parse(const char *name, int *version_r,
				const char **error_r);

/* Name of a wire version ("TLSv1.2"), "ANY" for 0, "unknown" otherwise. */
const char *portguard_tls_version_name(int version);

#endif

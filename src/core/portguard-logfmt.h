#ifndef PORTGUARD_LOGFMT_H
#define PORTGUARD_LOGFMT_H

/* key=value log lines with bounded, escaped values. Pure C, no Dovecot
   headers. Output never exceeds the caller's buffer and is always
   NUL-terminated. */

#include <stdbool.h>
#include <stddef.h>

/* Longest value (in source bytes) written before it is cut and "..." is
   appended. */
#define PORTGUARD_LOG_VALUE_MAX 128

struct portguard_kv {
	char *buf;
	size_t size;
	size_t len;
	/* set when something did not fit into buf */
	bool overflow;
};

/* Escape src into dst for use as a log value: bytes 0x21..0x7e other than
   '"', '\\' and '=' are copied; every other byte (space, controls, 8-bit,
   quote, backslash, '=') becomes \xHH. At most max_src bytes of src are
   used; if src was longer, "..." is appended. NULL or "" gives "-".
   dst is always NUL-terminated (if dst_size > 0). Returns strlen(dst). */
size_t portguard_log_escape(char *dst, size_t dst_size, const char *src,
			    size_t max_src);

/* Start a line in buf. */
void portguard_kv_init(struct portguard_kv *kv, char *buf, size_t size);
/* Append a bare word (e.g. the line's event name); not escaped. */
void portguard_kv_word(struct portguard_kv *kv, const char *word);
/* Append " key=value" (no leading space for the first item); value is
   escaped and bounded with PORTGUARD_LOG_VALUE_MAX. */
void portguard_kv_str(struct portguard_kv *kv, const char *key,
		      const char *value);
void portguard_kv_uint(struct portguard_kv *kv, const char *key,
		       unsigned long long value);
/* value < 0 is written as "-" (unknown). */
void portguard_kv_int_or_unknown(struct portguard_kv *kv, const char *key,
				 long long value);
/* "yes" / "no" */
void portguard_kv_bool(struct portguard_kv *kv, const char *key, bool value);

/* Facts about one established TLS session. NULL or "" strings log as "-". */
struct portguard_tls_info {
	unsigned int port;
	const char *mode; /* "implicit" | "starttls" */
	const char *proto; /* "TLSv1.3" */
	const char *cipher;
	int bits; /* < 0: unknown */
	const char *group; /* key exchange group, "x25519" */
	const char *sni; /* untrusted */
	const char *alpn; /* untrusted */
	bool resumed;
	const char *client_cert; /* subject, untrusted */
	long long handshake_ms; /* < 0: not measurable */
};

/* Format the TLS line:
   "tls_established port=465 mode=implicit proto=TLSv1.3 cipher=...
    bits=256 group=x25519 sni=- alpn=- resumed=no client_cert=-
    handshake_ms=3". Returns buf. */
const char *portguard_logfmt_tls(const struct portguard_tls_info *info,
				 char *buf, size_t size);

#endif

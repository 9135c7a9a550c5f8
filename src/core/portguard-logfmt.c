/* key=value log lines with bounded, escaped values. Pure C, no Dovecot
   headers. */

#include "portguard-logfmt.h"

#include <stdio.h>
#include <string.h>

#define PORTGUARD_LOG_CUT_MARK "..."

static const char portguard_log_hex[] = "0123456789ABCDEF";

static bool portguard_log_is_plain(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\' && c != '=';
}

/* Append n bytes to dst (holding *len bytes) only if they fit together
   with the terminating NUL. Returns false if they did not fit. */
static bool
portguard_log_put(char *dst, size_t dst_size, size_t *len,
		  const char *data, size_t n)
{
	if (*len + n >= dst_size)
		return false;
	memcpy(dst + *len, data, n);
	*len += n;
	return true;
}

/* portguard_log_escape() that also tells whether the output was cut short
   because dst was too small. Each escape and the "..." mark are written
   whole or not at all. */
static size_t
portguard_log_escape_full(char *dst, size_t dst_size, const char *src,
			  size_t max_src, bool *cut_r)
{
	size_t i, len = 0;

	*cut_r = false;
	if (dst_size == 0) {
		*cut_r = true;
		return 0;
	}
	dst[0] = '\0';
	if (src == NULL || src[0] == '\0') {
		*cut_r = !portguard_log_put(dst, dst_size, &len, "-", 1);
		dst[len] = '\0';
		return len;
	}
	for (i = 0; i < max_src && src[i] != '\0'; i++) {
		unsigned char c = (unsigned char)src[i];
		char esc[4];
		bool fit;

		if (portguard_log_is_plain(c)) {
			fit = portguard_log_put(dst, dst_size, &len,
						&src[i], 1);
		} else {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = portguard_log_hex[c >> 4];
			esc[3] = portguard_log_hex[c & 0x0f];
			fit = portguard_log_put(dst, dst_size, &len, esc, 4);
		}
		if (!fit) {
			*cut_r = true;
			dst[len] = '\0';
			return len;
		}
	}
	if (src[i] != '\0') {
		/* longer than max_src */
		*cut_r = !portguard_log_put(dst, dst_size, &len,
					    PORTGUARD_LOG_CUT_MARK,
					    strlen(PORTGUARD_LOG_CUT_MARK));
	}
	dst[len] = '\0';
	return len;
}

size_t portguard_log_escape(char *dst, size_t dst_size, const char *src,
			    size_t max_src)
{
	bool cut;

	return portguard_log_escape_full(dst, dst_size, src, max_src, &cut);
}

void portguard_kv_init(struct portguard_kv *kv, char *buf, size_t size)
{
	kv->buf = buf;
	kv->size = size;
	kv->len = 0;
	kv->overflow = false;
	if (size > 0)
		buf[0] = '\0';
}

/* Start an item: the separating space (unless first) and "key=" when key
   is not NULL. Nothing is written once the line has overflowed, so a
   truncated line is always a prefix of the full one. Returns false if the
   item cannot be written. */
static bool
portguard_kv_begin(struct portguard_kv *kv, const char *key, size_t extra)
{
	size_t need = (kv->len > 0 ? 1 : 0) + extra;

	if (key != NULL)
		need += strlen(key) + 1;
	if (kv->overflow || kv->len + need >= kv->size) {
		kv->overflow = true;
		return false;
	}
	if (kv->len > 0)
		kv->buf[kv->len++] = ' ';
	if (key != NULL) {
		memcpy(kv->buf + kv->len, key, strlen(key));
		kv->len += strlen(key);
		kv->buf[kv->len++] = '=';
	}
	kv->buf[kv->len] = '\0';
	return true;
}

/* Append a whole item with a value that needs no escaping. */
static void
portguard_kv_raw(struct portguard_kv *kv, const char *key, const char *value)
{
	size_t n = strlen(value);

	if (!portguard_kv_begin(kv, key, n))
		return;
	memcpy(kv->buf + kv->len, value, n);
	kv->len += n;
	kv->buf[kv->len] = '\0';
}

void portguard_kv_word(struct portguard_kv *kv, const char *word)
{
	portguard_kv_raw(kv, NULL, word == NULL ? "-" : word);
}

void portguard_kv_str(struct portguard_kv *kv, const char *key,
		      const char *value)
{
	size_t start = kv->len, value_len;
	bool cut;

	/* at least one value byte must fit after "key=" */
	if (!portguard_kv_begin(kv, key, 1))
		return;
	value_len = portguard_log_escape_full(kv->buf + kv->len,
					      kv->size - kv->len, value,
					      PORTGUARD_LOG_VALUE_MAX, &cut);
	if (cut)
		kv->overflow = true;
	if (value_len == 0) {
		/* not even one escape fitted: drop the whole item */
		kv->len = start;
	} else {
		kv->len += value_len;
	}
	kv->buf[kv->len] = '\0';
}

void portguard_kv_uint(struct portguard_kv *kv, const char *key,
		       unsigned long long value)
{
	char num[32];

	(void)snprintf(num, sizeof(num), "%llu", value);
	portguard_kv_raw(kv, key, num);
}

void portguard_kv_int_or_unknown(struct portguard_kv *kv, const char *key,
				 long long value)
{
	char num[32];

	if (value < 0) {
		portguard_kv_raw(kv, key, "-");
		return;
	}
	(void)snprintf(num, sizeof(num), "%lld", value);
	portguard_kv_raw(kv, key, num);
}

void portguard_kv_bool(struct portguard_kv *kv, const char *key, bool value)
{
	portguard_kv_raw(kv, key, value ? "yes" : "no");
}

const char *portguard_logfmt_tls(const struct portguard_tls_info *info,
				 char *buf, size_t size)
{
	struct portguard_kv kv;

	portguard_kv_init(&kv, buf, size);
	portguard_kv_word(&kv, "tls_established");
	portguard_kv_uint(&kv, "port", info->port);
	portguard_kv_str(&kv, "mode", info->mode);
	portguard_kv_str(&kv, "proto", info->proto);
	portguard_kv_str(&kv, "cipher", info->cipher);
	portguard_kv_int_or_unknown(&kv, "bits", info->bits);
	portguard_kv_str(&kv, "group", info->group);
	portguard_kv_str(&kv, "sni", info->sni);
	portguard_kv_str(&kv, "alpn", info->alpn);
	portguard_kv_bool(&kv, "resumed", info->resumed);
	portguard_kv_str(&kv, "client_cert", info->client_cert);
	portguard_kv_int_or_unknown(&kv, "handshake_ms", info->handshake_ms);
	return buf;
}

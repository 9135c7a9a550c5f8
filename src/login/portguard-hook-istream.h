#ifndef PORTGUARD_HOOK_ISTREAM_H
#define PORTGUARD_HOOK_ISTREAM_H

/* A pass-through istream that calls a hook before each read of its
   parent, until the hook returns FALSE. portguard puts it under the
   plaintext side of a STARTTLS port: the first read of the TLS layer
   created by STARTTLS comes through it, which is the first moment the new
   ssl_iostream can be given a handshake callback. */

typedef bool portguard_istream_hook_t(void *context);

struct istream *
portguard_hook_istream_create(struct istream *input,
			      portguard_istream_hook_t *hook, void *context);
/* Stop calling the hook (its context is going away). */
void portguard_hook_istream_disable(struct istream *input);

#endif

#ifndef PORTGUARD_COMPAT_H
#define PORTGUARD_COMPAT_H

/* Everything that differs between the Dovecot versions portguard builds
   against lives here. Always build against the headers of the Dovecot you
   run: Debian's 2.3.19.1+deb12u7 changed struct client_vfuncs without
   changing DOVECOT_ABI_VERSION. */

#include "client-common.h"

#ifndef DOVECOT_PREREQ
#  define DOVECOT_PREREQ(maj, min, micro) \
	((DOVECOT_VERSION_MAJOR << 16) + (DOVECOT_VERSION_MINOR << 8) + \
	 DOVECOT_VERSION_MICRO >= ((maj) << 16) + ((min) << 8) + (micro))
#endif

#if DOVECOT_PREREQ(2, 4, 0)
/* TLS from the first byte: implicit TLS listener */
#  define PORTGUARD_CLIENT_TLS(c) ((c)->connection_tls_secured)
/* TLS terminated by a trusted HAProxy in front of us */
#  define PORTGUARD_CLIENT_PROXIED_TLS(c) ((c)->haproxy_terminated_tls)
#  define PORTGUARD_CLIENT_SECURED(c) ((c)->connection_secured)
#  define PORTGUARD_CREATE_RETURNS_INT 1
#else
#  define PORTGUARD_CLIENT_TLS(c) ((c)->tls)
#  define PORTGUARD_CLIENT_PROXIED_TLS(c) ((c)->proxied_ssl)
#  define PORTGUARD_CLIENT_SECURED(c) ((c)->secured)
#  define PORTGUARD_CREATE_RETURNS_INT 0
#endif

#endif

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
/* the session is TLS (from the first byte, after STARTTLS, or terminated
   by a trusted HAProxy) */
#  define PORTGUARD_CLIENT_TLS(c) ((c)->connection_tls_secured)
/* TLS terminated by a trusted HAProxy in front of us */
#  define PORTGUARD_CLIENT_PROXIED_TLS(c) ((c)->haproxy_terminated_tls)
/* Dovecot treats the connection as secured (TLS, localhost, trusted) */
#  define PORTGUARD_CLIENT_SECURED(c) ((c)->connection_secured)
/* TLS came through STARTTLS */
#  define PORTGUARD_CLIENT_USED_STARTTLS(c) ((c)->connection_used_starttls)
#  define PORTGUARD_CREATE_RETURNS_INT 1
/* 2.4 has v.iostream_change_pre/post: a public hook that sees the TLS
   layer appear after STARTTLS (2.3 needs the pass-through istream) */
#  define PORTGUARD_HAVE_IOSTREAM_CHANGE 1
/* 2.4 has v.reload_config, called when the TLS SNI changed the settings */
#  define PORTGUARD_HAVE_RELOAD_CONFIG 1
/* "ssl = no|yes|required" lives in struct ssl_server_settings */
#  define PORTGUARD_CLIENT_SSL_MODE(c) ((c)->ssl_server_set->ssl)
/* the process's master settings (base_dir, state_dir) */
#  define PORTGUARD_MASTER_SETTINGS() \
	master_service_get_service_settings(master_service)
/* SOCKETn_SETTINGS (listener ssl flags) is removed from the environment
   before plugins are loaded: the listener check happens per client */
#  define PORTGUARD_HAVE_LISTENER_ENV 0
#else
#  define PORTGUARD_CLIENT_TLS(c) ((c)->tls)
#  define PORTGUARD_CLIENT_PROXIED_TLS(c) ((c)->proxied_ssl)
#  define PORTGUARD_CLIENT_SECURED(c) ((c)->secured)
#  define PORTGUARD_CLIENT_USED_STARTTLS(c) ((c)->starttls)
#  define PORTGUARD_CREATE_RETURNS_INT 0
#  define PORTGUARD_HAVE_IOSTREAM_CHANGE 0
#  define PORTGUARD_HAVE_RELOAD_CONFIG 0
#  define PORTGUARD_CLIENT_SSL_MODE(c) ((c)->ssl_set->ssl)
#  define PORTGUARD_MASTER_SETTINGS() \
	master_service_settings_get(master_service)
#  define PORTGUARD_HAVE_LISTENER_ENV 1
#endif

#endif

#ifndef PORTGUARD_SETTINGS_H
#define PORTGUARD_SETTINGS_H

/* portguard's Dovecot settings: known to doveconf and the config process
   through the settings module (libportguard_settings.so), read by the login
   plugin itself (login processes never see plugin {}). */

/* Dovecot 2.4 reworked the settings API: settings structs carry their own
   pool, setting_parser_info lost module_name/type_offset/parent_offset and
   modules export <name>_set_infos[] instead of <name>_set_roots[]. */
#if DOVECOT_PREREQ(2, 4, 0)
#  define PORTGUARD_SETTINGS_24 1
#else
#  define PORTGUARD_SETTINGS_24 0
#endif

struct portguard_settings {
#if PORTGUARD_SETTINGS_24
	/* settings_get() gives each copy its own pool: settings_free() */
	pool_t pool;
#endif
	const char *portguard_implicit_tls_ports;
	const char *portguard_starttls_ports;
	const char *portguard_tls_exempt_networks;
	const char *portguard_min_tls_protocol;
	bool portguard_log_tls;

	/* failed-AUTH rate limiting */
	const char *portguard_ratelimit; /* enforce | monitor | off */
	unsigned int portguard_auth_fail_limit;
	unsigned int portguard_auth_fail_window; /* secs */
	unsigned int portguard_ban_duration; /* secs */
	unsigned int portguard_ban_duration_max; /* secs */
	unsigned int portguard_ipv4_prefix;
	unsigned int portguard_ipv6_prefix;
	const char *portguard_ratelimit_exempt_networks;
	const char *portguard_ban_action; /* reply | drop */
	const char *portguard_state; /* shm | dict:<uri> */
	const char *portguard_state_path;
	uoff_t portguard_state_size;
	unsigned int portguard_state_timeout; /* msecs */
	const char *portguard_state_failure; /* open | closed */
};

extern const struct setting_parser_info portguard_setting_parser_info;

#endif

#ifndef PORTGUARD_SETTINGS_H
#define PORTGUARD_SETTINGS_H

/* portguard's Dovecot settings: known to doveconf and the config process
   through the settings module (libportguard_settings.so), read by the login
   plugin itself (login processes never see plugin {}). */

struct portguard_settings {
	const char *portguard_implicit_tls_ports;
	const char *portguard_starttls_ports;
	const char *portguard_tls_exempt_networks;
	const char *portguard_min_tls_protocol;
	bool portguard_log_tls;
};

extern const struct setting_parser_info portguard_setting_parser_info;

#endif

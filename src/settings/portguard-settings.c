/* Setting definitions shared by the settings module and the login plugin.
   The check function parses every value with the same core code the plugin
   uses, so that doveconf refuses exactly what the plugin could not use. */

#include "lib.h"
#include "settings-parser.h"
#include "portguard-policy.h"
#include "portguard-ratelimit.h"
#include "portguard-shm.h"
#include "portguard-settings.h"

#include <stddef.h>

#undef DEF
#define DEF(type, name) \
	SETTING_DEFINE_STRUCT_##type(#name, name, struct portguard_settings)

static const struct setting_define portguard_setting_defines[] = {
	DEF(STR, portguard_implicit_tls_ports),
	DEF(STR, portguard_starttls_ports),
	DEF(STR, portguard_tls_exempt_networks),
	DEF(STR, portguard_min_tls_protocol),
	DEF(BOOL, portguard_log_tls),

	DEF(STR, portguard_ratelimit),
	DEF(UINT, portguard_auth_fail_limit),
	DEF(TIME, portguard_auth_fail_window),
	DEF(TIME, portguard_ban_duration),
	DEF(TIME, portguard_ban_duration_max),
	DEF(UINT, portguard_ipv4_prefix),
	DEF(UINT, portguard_ipv6_prefix),
	DEF(STR, portguard_ratelimit_exempt_networks),
	DEF(STR, portguard_ban_action),
	DEF(STR, portguard_state),
	DEF(STR, portguard_state_path),
	DEF(SIZE, portguard_state_size),
	DEF(TIME_MSECS, portguard_state_timeout),
	DEF(STR, portguard_state_failure),
#if PORTGUARD_SETTINGS_24
	/* port24b: 2.4 dict backend, portguard_state = dict takes the dict
	   from portguard_state_dict { dict <driver> { ... } } */
	{ .type = SET_FILTER_NAME, .key = "portguard_state_dict" },
#endif

	SETTING_DEFINE_LIST_END
};

static const struct portguard_settings portguard_default_settings = {
	.portguard_implicit_tls_ports = "465",
	.portguard_starttls_ports = "587",
	.portguard_tls_exempt_networks = "",
	.portguard_min_tls_protocol = "TLSv1.2",
	.portguard_log_tls = TRUE,

	.portguard_ratelimit = "enforce",
	.portguard_auth_fail_limit = 5,
	.portguard_auth_fail_window = 10 * 60,
	.portguard_ban_duration = 15 * 60,
	.portguard_ban_duration_max = 24 * 60 * 60,
	.portguard_ipv4_prefix = 32,
	.portguard_ipv6_prefix = 64,
	.portguard_ratelimit_exempt_networks = "",
	.portguard_ban_action = "reply",
	.portguard_state = "shm",
	.portguard_state_path = "",
	.portguard_state_size = 16 * 1024 * 1024,
	.portguard_state_timeout = 500,
	.portguard_state_failure = "open",
};

/* Dovecot's own enum type reports "Invalid value" without the key: check
   our word lists here so that the error names the setting. */
static bool
portguard_settings_check_word(const char *key, const char *value,
			      const char *const *words, const char **error_r)
{
	unsigned int i;

	for (i = 0; words[i] != NULL; i++) {
		if (strcmp(value, words[i]) == 0)
			return TRUE;
	}
	*error_r = t_strdup_printf("%s: must be %s, not '%s'", key,
				   t_strarray_join(words, " or "), value);
	return FALSE;
}

static bool
portguard_settings_check_ratelimit(const struct portguard_settings *set,
				   const char **error_r)
{
	struct portguard_rl_config config;
	struct portguard_netlist exempt;
	const char *error;

	static const char *const ratelimit_words[] = {
		"enforce", "monitor", "off", NULL
	};
	static const char *const ban_action_words[] = {
		"reply", "drop", NULL
	};
	static const char *const failure_words[] = {
		"open", "closed", NULL
	};

	if (!portguard_settings_check_word("portguard_ratelimit",
			set->portguard_ratelimit, ratelimit_words, error_r) ||
	    !portguard_settings_check_word("portguard_ban_action",
			set->portguard_ban_action, ban_action_words, error_r) ||
	    !portguard_settings_check_word("portguard_state_failure",
			set->portguard_state_failure, failure_words, error_r))
		return FALSE;

	i_zero(&config);
	config.fail_limit = set->portguard_auth_fail_limit;
	config.fail_window = set->portguard_auth_fail_window;
	config.ban_duration = set->portguard_ban_duration;
	config.ban_duration_max = set->portguard_ban_duration_max;
	if (portguard_rl_config_check(&config, &error) < 0) {
		*error_r = t_strdup(error);
		return FALSE;
	}
	if (set->portguard_ipv4_prefix < 1 || set->portguard_ipv4_prefix > 32) {
		*error_r = "portguard_ipv4_prefix: must be 1..32";
		return FALSE;
	}
	if (set->portguard_ipv6_prefix < 1 ||
	    set->portguard_ipv6_prefix > 128) {
		*error_r = "portguard_ipv6_prefix: must be 1..128";
		return FALSE;
	}
	if (portguard_netlist_parse(set->portguard_ratelimit_exempt_networks,
				    &exempt, &error) < 0) {
		*error_r = t_strdup_printf(
			"portguard_ratelimit_exempt_networks: %s", error);
		return FALSE;
	}
#if PORTGUARD_SETTINGS_24
	/* port24b: 2.4 has no dict URIs: the dict is in
	   portguard_state_dict { } */
	if (strcmp(set->portguard_state, "shm") != 0 &&
	    strcmp(set->portguard_state, "dict") != 0) {
		*error_r = t_strdup_printf("portguard_state: must be shm or "
			"dict (with portguard_state_dict { dict <driver> "
			"{ ... } }), not '%s'", set->portguard_state);
		return FALSE;
	}
#else
	if (strcmp(set->portguard_state, "shm") != 0 &&
	    (strncmp(set->portguard_state, "dict:", 5) != 0 ||
	     set->portguard_state[5] == '\0')) {
		*error_r = t_strdup_printf("portguard_state: "
			"must be shm or dict:<dict name or URI>, not '%s'",
			set->portguard_state);
		return FALSE;
	}
#endif
	if (set->portguard_state_size < PORTGUARD_SHM_MIN_SIZE) {
		*error_r = t_strdup_printf("portguard_state_size: "
			"must be at least %u bytes", PORTGUARD_SHM_MIN_SIZE);
		return FALSE;
	}
	if (set->portguard_state_size > 4ULL * 1024 * 1024 * 1024) {
		*error_r = "portguard_state_size: must be at most 4G";
		return FALSE;
	}
	if (set->portguard_state_timeout == 0) {
		*error_r = "portguard_state_timeout: must be > 0";
		return FALSE;
	}
	return TRUE;
}

static bool
portguard_settings_check(void *_set, pool_t pool ATTR_UNUSED,
			 const char **error_r)
{
	const struct portguard_settings *set = _set;
	struct portguard_policy policy;

	if (portguard_policy_init(&policy, set->portguard_implicit_tls_ports,
				  set->portguard_starttls_ports,
				  set->portguard_tls_exempt_networks,
				  set->portguard_min_tls_protocol,
				  set->portguard_log_tls, error_r) < 0) {
		*error_r = t_strdup(*error_r);
		return FALSE;
	}
	return portguard_settings_check_ratelimit(set, error_r);
}

#if PORTGUARD_SETTINGS_24
const struct setting_parser_info portguard_setting_parser_info = {
	.name = "portguard",
	.defines = portguard_setting_defines,
	.defaults = &portguard_default_settings,

	.struct_size = sizeof(struct portguard_settings),
	.pool_offset1 = 1 + offsetof(struct portguard_settings, pool),

	.check_func = portguard_settings_check,
};
#else
const struct setting_parser_info portguard_setting_parser_info = {
	.module_name = "portguard",
	.defines = portguard_setting_defines,
	.defaults = &portguard_default_settings,

	.type_offset = SIZE_MAX,
	.struct_size = sizeof(struct portguard_settings),

	.parent_offset = SIZE_MAX,

	.check_func = portguard_settings_check,
};
#endif

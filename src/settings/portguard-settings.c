/* Setting definitions shared by the settings module and the login plugin.
   The check function parses every value with the same core code the plugin
   uses, so that doveconf refuses exactly what the plugin could not use. */

#include "lib.h"
#include "settings-parser.h"
#include "portguard-policy.h"
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

	SETTING_DEFINE_LIST_END
};

static const struct portguard_settings portguard_default_settings = {
	.portguard_implicit_tls_ports = "465",
	.portguard_starttls_ports = "587",
	.portguard_tls_exempt_networks = "",
	.portguard_min_tls_protocol = "TLSv1.2",
	.portguard_log_tls = TRUE,
};

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
	return TRUE;
}

const struct setting_parser_info portguard_setting_parser_info = {
	.module_name = "portguard",
	.defines = portguard_setting_defines,
	.defaults = &portguard_default_settings,

	.type_offset = SIZE_MAX,
	.struct_size = sizeof(struct portguard_settings),

	.parent_offset = SIZE_MAX,

	.check_func = portguard_settings_check,
};

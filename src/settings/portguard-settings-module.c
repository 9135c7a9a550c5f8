/* The settings module: doveconf and the config process load
   $moduledir/settings/libportguard_settings.so and pick up the settings
   below (2.3: <module>_set_roots, 2.4: <module>_set_infos), so that
   portguard_* keys are first-class, validated Dovecot settings. */

#include "lib.h"
#include "settings-parser.h"
#include "portguard-settings.h"

/* checked by module_dir_load() against the running Dovecot */
const char *portguard_settings_version = DOVECOT_ABI_VERSION;

#if PORTGUARD_SETTINGS_24
/* 2.4: config_parse_load_modules() looks up <module name>_set_infos */
const struct setting_parser_info *portguard_settings_set_infos[] = {
	&portguard_setting_parser_info,
	NULL
};
#else
const struct setting_parser_info *portguard_settings_set_roots[] = {
	&portguard_setting_parser_info,
	NULL
};
#endif

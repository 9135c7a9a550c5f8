/* The settings module: doveconf and the config process load
   $moduledir/settings/libportguard_settings.so and pick up the roots below,
   so that portguard_* keys are first-class, validated Dovecot settings. */

#include "lib.h"
#include "settings-parser.h"
#include "portguard-settings.h"

/* checked by module_dir_load() against the running Dovecot */
const char *portguard_settings_version = DOVECOT_ABI_VERSION;

const struct setting_parser_info *portguard_settings_set_roots[] = {
	&portguard_setting_parser_info,
	NULL
};

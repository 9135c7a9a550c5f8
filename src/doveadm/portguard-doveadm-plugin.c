/* doveadm portguard list | ban <ip[/prefix]> [<duration>] |
   unban <ip[/prefix]> | flush

   Works on the state the login processes use (portguard_state). Read the
   settings with doveadm's own config lookup: set portguard_state* (and on
   Dovecot 2.4 the portguard_state_dict { dict ... } block) at the top
   level, not only inside protocol submission {}, so that doveadm and the
   login processes agree on where the state is. Same commands, output and
   exit codes on Dovecot 2.3 and 2.4. */

#include "lib.h"
#include "ioloop.h"
#include "time-util.h"
#include "module-dir.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "settings-parser.h"
#include "doveadm.h"
#include "doveadm-cmd.h"
#include "doveadm-print.h"
#include "doveadm-settings.h"
#include "portguard-settings.h"
#include "portguard-state.h"

#if DOVECOT_PREREQ(2, 4, 0)
#  include "settings.h"
#  include "str-parse.h"
#  define PORTGUARD_DOVEADM_24 1
/* 2.4 renamed the duration parser */
#  define portguard_doveadm_parse_time(str, secs_r, error_r) \
	str_parse_get_interval(str, secs_r, error_r)
#else
#  define PORTGUARD_DOVEADM_24 0
#  define portguard_doveadm_parse_time(str, secs_r, error_r) \
	settings_get_time(str, secs_r, error_r)
#endif

#include <sysexits.h>

const char *doveadm_portguard_plugin_version = DOVECOT_ABI_VERSION;

void doveadm_portguard_plugin_init(struct module *module);
void doveadm_portguard_plugin_deinit(void);

struct portguard_doveadm {
	const struct portguard_settings *set;
	struct portguard_rl_settings rl;
	struct portguard_state *state;
};

/* Dovecot's base_dir */
static const struct master_service_settings *portguard_doveadm_mset(void)
{
#if PORTGUARD_DOVEADM_24
	return master_service_get_service_settings(master_service);
#else
	return master_service_settings_get(master_service);
#endif
}

/* Read portguard's settings into ctx->set (2.4: released in close). */
static int portguard_doveadm_read_settings(struct doveadm_cmd_context *cctx,
					   struct portguard_doveadm *ctx)
{
#if PORTGUARD_DOVEADM_24
	const char *error;

	if (settings_get(cctx->set_event, &portguard_setting_parser_info, 0,
			 &ctx->set, &error) < 0) {
		i_error("portguard: %s", error);
		return -1;
	}
#else
	(void)cctx;
	ctx->set = doveadm_setting_roots_get_settings(
		&portguard_setting_parser_info);
	if (ctx->set == NULL) {
		i_error("portguard: settings not available");
		return -1;
	}
#endif
	return 0;
}

static void portguard_doveadm_close(struct portguard_doveadm *ctx)
{
	portguard_state_close(&ctx->state);
#if PORTGUARD_DOVEADM_24
	settings_free(ctx->set);
#endif
}

static int portguard_doveadm_open(struct doveadm_cmd_context *cctx,
				  struct portguard_doveadm *ctx)
{
	const struct master_service_settings *mset = portguard_doveadm_mset();
	const char *warning, *error;

	i_zero(ctx);
	if (portguard_doveadm_read_settings(cctx, ctx) < 0) {
		doveadm_exit_code = EX_CONFIG;
		return -1;
	}
	if (portguard_rl_settings_parse(ctx->set, &ctx->rl, &error) < 0) {
		i_error("portguard: %s", error);
		doveadm_exit_code = EX_CONFIG;
		portguard_doveadm_close(ctx);
		return -1;
	}
	if (portguard_state_open(ctx->set, &ctx->rl, mset->base_dir,
				 &ctx->state, &warning, &error) < 0) {
		i_error("portguard: %s", error);
		doveadm_exit_code = EX_TEMPFAIL;
		portguard_doveadm_close(ctx);
		return -1;
	}
	if (warning != NULL)
		i_warning("portguard: %s", warning);
	return 0;
}

static bool
portguard_doveadm_parse_key(struct portguard_doveadm *ctx, const char *str,
			    struct portguard_rl_key *key_r)
{
	const char *error;
	unsigned int want;

	if (portguard_rl_key_parse(str, ctx->rl.ipv4_prefix,
				   ctx->rl.ipv6_prefix, key_r, &error) < 0) {
		i_error("portguard: invalid address '%s': %s", str, error);
		doveadm_exit_code = EX_USAGE;
		return FALSE;
	}
	want = key_r->addr.family == 4 ? ctx->rl.ipv4_prefix :
		ctx->rl.ipv6_prefix;
	if (key_r->prefix != want) {
		i_error("portguard: '%s': clients are counted per /%u "
			"(portguard_ipv%c_prefix): give an address or "
			"address/%u", str, want,
			key_r->addr.family == 4 ? '4' : '6', want);
		doveadm_exit_code = EX_USAGE;
		return FALSE;
	}
	return TRUE;
}

/* Log an administrative change as a line and a named event
   (portguard_ban, portguard_unban, portguard_flush) with the key. */
static void ATTR_FORMAT(3, 4)
portguard_doveadm_log(const char *event_name, const char *key,
		      const char *fmt, ...)
{
	struct event *event = event_create(NULL);
	va_list args;

	event_set_name(event, event_name);
	event_set_append_log_prefix(event, "portguard: ");
	event_add_str(event, "manual", "yes");
	if (key != NULL)
		event_add_str(event, "key", key);
	va_start(args, fmt);
	T_BEGIN {
		e_info(event, "%s", t_strdup_vprintf(fmt, args));
	} T_END;
	va_end(args);
	event_unref(&event);
}

/* The "address" parameter of ban/unban: open the state and parse it into
   a key. FALSE (with the exit code set, nothing left open) on error. */
static bool
portguard_doveadm_open_key(struct doveadm_cmd_context *cctx,
			   const char *cmd_name, struct portguard_doveadm *ctx,
			   struct portguard_rl_key *key_r)
{
	const char *addr;

	if (!doveadm_cmd_param_str(cctx, "address", &addr)) {
		i_error("portguard %s: address missing", cmd_name);
		doveadm_exit_code = EX_USAGE;
		return FALSE;
	}
	if (portguard_doveadm_open(cctx, ctx) < 0)
		return FALSE;
	if (!portguard_doveadm_parse_key(ctx, addr, key_r)) {
		portguard_doveadm_close(ctx);
		return FALSE;
	}
	return TRUE;
}

static const char *portguard_doveadm_time(uint32_t t)
{
	return t == 0 ? "-" : t_strflocaltime("%Y-%m-%d %H:%M:%S", t);
}

struct portguard_doveadm_list_ctx {
	const struct portguard_rl_config *config;
	uint32_t now;
	bool banned_only;
};

static bool
portguard_doveadm_list_entry(const struct portguard_rl_key *key,
			     const struct portguard_rl_entry *entry,
			     void *context)
{
	struct portguard_doveadm_list_ctx *ctx = context;
	char keybuf[64];
	unsigned int remaining;
	bool banned;

	banned = portguard_rl_is_banned(entry, ctx->now, &remaining);
	if (ctx->banned_only && !banned)
		return TRUE;
	T_BEGIN {
		doveadm_print(portguard_rl_key_to_str(key, keybuf,
						      sizeof(keybuf)));
		doveadm_print(banned ? ((entry->flags &
			PORTGUARD_RL_FLAG_MANUAL) != 0 ? "banned(manual)" :
			"banned") : "counting");
		doveadm_print(dec2str(portguard_rl_failures(entry, ctx->config,
							    ctx->now)));
		doveadm_print(banned ? dec2str(remaining) : "0");
		doveadm_print(dec2str(entry->ban_level));
		doveadm_print(portguard_doveadm_time(banned ?
						     entry->ban_until : 0));
		doveadm_print(portguard_doveadm_time(entry->last_seen));
	} T_END;
	return TRUE;
}

static void cmd_portguard_list(struct doveadm_cmd_context *cctx)
{
	struct portguard_doveadm ctx;
	struct portguard_doveadm_list_ctx lctx;
	const char *error;
	bool banned_only = FALSE;

	(void)doveadm_cmd_param_bool(cctx, "banned", &banned_only);
	if (portguard_doveadm_open(cctx, &ctx) < 0)
		return;
	i_zero(&lctx);
	lctx.config = &ctx.rl.config;
	lctx.now = ioloop_time;
	lctx.banned_only = banned_only;

	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	doveadm_print_header_simple("key");
	doveadm_print_header_simple("state");
	doveadm_print_header("failures", "failures",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY);
	doveadm_print_header("ban_remaining", "ban_remaining",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY);
	doveadm_print_header("ban_level", "ban_level",
			     DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY);
	doveadm_print_header_simple("ban_until");
	doveadm_print_header_simple("last_seen");
	if (portguard_state_iterate(ctx.state, portguard_doveadm_list_entry,
				    &lctx, &error) < 0) {
		i_error("portguard: list: %s", error);
		doveadm_exit_code = EX_TEMPFAIL;
	}
	portguard_doveadm_close(&ctx);
}

static void cmd_portguard_ban(struct doveadm_cmd_context *cctx)
{
	struct portguard_doveadm ctx;
	struct portguard_rl_key key;
	const char *duration, *error;
	unsigned int secs = 0, used;
	char keybuf[64];

	/* a duration: "90 secs", "2h", "1 day", or plain seconds */
	if (doveadm_cmd_param_str(cctx, "duration", &duration) &&
	    ((str_to_uint(duration, &secs) < 0 &&
	      portguard_doveadm_parse_time(duration, &secs, &error) < 0) ||
	     secs == 0)) {
		i_error("portguard ban: invalid duration '%s'", duration);
		doveadm_exit_code = EX_USAGE;
		return;
	}
	if (!portguard_doveadm_open_key(cctx, "ban", &ctx, &key))
		return;
	(void)portguard_rl_key_to_str(&key, keybuf, sizeof(keybuf));
	if (portguard_state_ban(ctx.state, &key, ioloop_time, secs, &used,
				&error) < 0) {
		i_error("portguard: ban: %s", error);
		doveadm_exit_code = EX_TEMPFAIL;
	} else {
		portguard_doveadm_log("portguard_ban", keybuf,
				      "ban key=%s ban_secs=%u manual=yes",
				      keybuf, used);
	}
	portguard_doveadm_close(&ctx);
}

static void cmd_portguard_unban(struct doveadm_cmd_context *cctx)
{
	struct portguard_doveadm ctx;
	struct portguard_rl_key key;
	const char *error;
	char keybuf[64];
	bool found;

	if (!portguard_doveadm_open_key(cctx, "unban", &ctx, &key))
		return;
	(void)portguard_rl_key_to_str(&key, keybuf, sizeof(keybuf));
	if (portguard_state_unban(ctx.state, &key, ioloop_time, &found,
				  &error) < 0) {
		i_error("portguard: unban: %s", error);
		doveadm_exit_code = EX_TEMPFAIL;
	} else if (!found) {
		i_error("portguard: unban: %s is not tracked", keybuf);
		doveadm_exit_code = DOVEADM_EX_NOTFOUND;
	} else {
		portguard_doveadm_log("portguard_unban", keybuf,
				      "unban key=%s", keybuf);
	}
	portguard_doveadm_close(&ctx);
}

static void cmd_portguard_flush(struct doveadm_cmd_context *cctx)
{
	struct portguard_doveadm ctx;
	const char *error;

	if (portguard_doveadm_open(cctx, &ctx) < 0)
		return;
	if (portguard_state_flush(ctx.state, &error) < 0) {
		i_error("portguard: flush: %s", error);
		doveadm_exit_code = EX_TEMPFAIL;
	} else {
		portguard_doveadm_log("portguard_flush", NULL,
				      "flush: all keys forgotten");
	}
	portguard_doveadm_close(&ctx);
}

static struct doveadm_cmd_ver2 portguard_doveadm_cmds[] = {
{
	.name = "portguard list",
	.cmd = cmd_portguard_list,
	.usage = "[-b]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAM('b', "banned", CMD_PARAM_BOOL, 0)
DOVEADM_CMD_PARAMS_END
},
{
	.name = "portguard ban",
	.cmd = cmd_portguard_ban,
	.usage = "<ip[/prefix]> [<duration, e.g. 1h, 30 mins, 600>]",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAM('\0', "address", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAM('\0', "duration", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
},
{
	.name = "portguard unban",
	.cmd = cmd_portguard_unban,
	.usage = "<ip[/prefix]>",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAM('\0', "address", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END
},
{
	.name = "portguard flush",
	.cmd = cmd_portguard_flush,
	.usage = "",
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_PARAMS_END
},
};

void doveadm_portguard_plugin_init(struct module *module ATTR_UNUSED)
{
	unsigned int i;

#if !PORTGUARD_DOVEADM_24
	/* 2.4: doveadm reads any known settings with settings_get() */
	doveadm_setting_roots_add(&portguard_setting_parser_info);
#endif
	for (i = 0; i < N_ELEMENTS(portguard_doveadm_cmds); i++)
		doveadm_cmd_register_ver2(&portguard_doveadm_cmds[i]);
}

void doveadm_portguard_plugin_deinit(void)
{
}

/* The "dict" state backend, for several Dovecot front ends sharing one
   Redis: counters and bans live in Dovecot's dict layer (redis driver
   directly, or the dict proxy service).

   Which dict: Dovecot 2.3 takes portguard_state = dict:<uri>; Dovecot 2.4
   has no dict URIs: portguard_state = dict and the dict is the one in a
   portguard_state_dict { dict <name> { ... } } block (as quota_clone
   { dict ... } in 2.4; the filter is not called "portguard": doveconf
   would then show every portguard_* setting inside it).

   Keys (under the dict's own prefix):
     shared/portguard/f/<key>/<n>  failures in fixed window n = now / window,
                                   atomic increments (exact across hosts)
     shared/portguard/b/<key>      ban history "v1 <until> <start> <level>
                                   <flags>" (portguard_rl_history_to_str)
   The failures within the sliding window are estimated from the current
   and the previous fixed window (portguard_rl_window_estimate). Every key
   expires on its own, after 2 x ban_duration_max + window (2.3: added to
   a redis: URI as expire_secs= unless given; 2.4: per transaction). The
   wait for Redis is portguard_state_timeout (2.3: timeout_msecs= unless
   given; 2.4: it replaces redis_request_timeout). Operations are
   synchronous and bounded by that timeout; any error is returned to the
   caller, which fails open or closed as configured. */

#include "lib.h"
#include "str.h"
#include "dict.h"
#include "portguard-settings.h"
#include "portguard-state-private.h"
#include "portguard-redis.h"

#if DOVECOT_PREREQ(2, 4, 0)
#  include "array.h"
#  include "settings.h"
#  include "settings-parser.h"
#  include "master-service.h"
/* struct dict's driver flags: does it support expire_secs? */
#  include "dict-private.h"
#  define PORTGUARD_DICT_24 1
/* the filter holding portguard's dict:
   portguard_state_dict { dict redis { ... } } */
#  define PORTGUARD_DICT_FILTER "portguard_state_dict"
/* lib-dict's redis settings (exported by libdovecot, no public header):
   read by key through its defines, never through its private struct */
extern const struct setting_parser_info redis_setting_parser_info;
#else
#  define PORTGUARD_DICT_24 0
#endif

#define PORTGUARD_DICT_PREFIX "shared/portguard/"

struct portguard_state_dict {
	struct portguard_state state;
	struct dict *dict;
	struct dict_op_settings op_set;
	/* parent of the dict's events: its own error lines are silenced,
	   portguard reports failures itself, at most once a minute */
	struct event *event;
#if PORTGUARD_DICT_24
	/* our overrides (redis_request_timeout) for the dict's settings */
	struct settings_instance *set_instance;
#endif
	/* where Redis is, for listing and flushing (the dict API cannot
	   iterate Redis); has_redis is FALSE for other dict drivers */
	bool has_redis;
	pool_t redis_pool;
	struct portguard_redis_params redis;
};

#define DICT_STATE(s) (container_of(s, struct portguard_state_dict, state))

static const struct portguard_state_vfuncs portguard_state_dict_vfuncs;

static const char *
portguard_dict_key_str(const struct portguard_rl_key *key)
{
	char buf[64];

	return t_strdup(portguard_rl_key_to_str(key, buf, sizeof(buf)));
}

static const char *
portguard_dict_fail_key(const struct portguard_rl_key *key, uint32_t slot)
{
	return t_strdup_printf(PORTGUARD_DICT_PREFIX"f/%s/%u",
			       portguard_dict_key_str(key), slot);
}

static const char *portguard_dict_ban_key(const struct portguard_rl_key *key)
{
	return t_strdup_printf(PORTGUARD_DICT_PREFIX"b/%s",
			       portguard_dict_key_str(key));
}

/* How long every key lives: long enough for the longest history. */
static unsigned int
portguard_dict_expire_secs(const struct portguard_rl_settings *rl)
{
	uint64_t expire = 2ULL * rl->config.ban_duration_max +
		rl->config.fail_window;

	return expire > UINT_MAX ? UINT_MAX : (unsigned int)expire;
}

/* Keep a copy of the Redis address for listing and flushing. */
static void portguard_dict_set_redis(struct portguard_state_dict *state,
				     const struct portguard_redis_params *p)
{
	pool_t pool = pool_alloconly_create("portguard redis params", 256);

	state->redis_pool = pool;
	state->redis.socket_path = p_strdup_empty(pool, p->socket_path);
	state->redis.host = p_strdup_empty(pool, p->host);
	state->redis.port = p_strdup_empty(pool, p->port);
	state->redis.db = p_strdup_empty(pool, p->db);
	state->redis.password = p_strdup_empty(pool, p->password);
	state->redis.prefix = p_strdup_empty(pool, p->prefix);
	state->has_redis = TRUE;
}

static void portguard_dict_free(struct portguard_state_dict *state)
{
	event_unref(&state->event);
#if PORTGUARD_DICT_24
	settings_instance_free(&state->set_instance);
#endif
	pool_unref(&state->redis_pool);
	i_free(state);
}

#if PORTGUARD_DICT_24
/* Read lib-dict's redis settings of the dict named dict_name under event
   into params_r (data stack), by key through redis_setting_parser_info's
   defines, so that no private struct layout is assumed. */
static int
portguard_dict_redis_settings(struct event *event, const char *dict_name,
			      struct portguard_redis_params *params_r,
			      const char **error_r)
{
	const struct setting_parser_info *info = &redis_setting_parser_info;
	const struct setting_define *def;
	struct event *lookup_event;
	const void *set;
	pool_t pool;
	int ret;

	i_zero(params_r);
	lookup_event = event_create(event);
	settings_event_add_list_filter_name(lookup_event, "dict", dict_name);
	/* the function, not the macro: the struct is opaque here */
	ret = (settings_get)(lookup_event, info, 0, __FILE__, __LINE__,
			     &set, error_r);
	event_unref(&lookup_event);
	if (ret < 0)
		return -1;

	for (def = info->defines; def->key != NULL; def++) {
		const void *ptr = CONST_PTR_OFFSET(set, def->offset);
		const char *value = NULL;

		if (def->type == SET_STR)
			value = t_strdup(*(const char *const *)ptr);
		else if (def->type == SET_IN_PORT)
			value = dec2str(*(const in_port_t *)ptr);
		else if (def->type == SET_UINT)
			value = dec2str(*(const unsigned int *)ptr);
		else
			continue;
		if (strcmp(def->key, "redis_socket_path") == 0)
			params_r->socket_path = value;
		else if (strcmp(def->key, "redis_host") == 0)
			params_r->host = value;
		else if (strcmp(def->key, "redis_port") == 0)
			params_r->port = value;
		else if (strcmp(def->key, "redis_key_prefix") == 0)
			params_r->prefix = value;
		else if (strcmp(def->key, "redis_password") == 0)
			params_r->password = value;
		else if (strcmp(def->key, "redis_db_id") == 0)
			params_r->db = value;
	}
	pool = *(const pool_t *)CONST_PTR_OFFSET(set, info->pool_offset1 - 1);
	pool_unref(&pool);
	return 0;
}

/* The name of the first dict in PORTGUARD_DICT_FILTER, or NULL. */
static const char *portguard_dict_first_name(struct event *event)
{
	const struct dict_settings *dict_set;
	const char *name = NULL, *error;

	if (settings_get(event, &dict_setting_parser_info, 0,
			 &dict_set, &error) < 0)
		return NULL;
	if (array_is_created(&dict_set->dicts) &&
	    array_count(&dict_set->dicts) > 0)
		name = t_strdup(array_idx_elem(&dict_set->dicts, 0));
	settings_free(dict_set);
	return name;
}

static int portguard_dict_init(struct portguard_state_dict *state,
			       const struct portguard_settings *set,
			       const char *base_dir ATTR_UNUSED,
			       const char **error_r)
{
	const struct portguard_rl_settings *rl = state->state.rl;
	struct portguard_redis_params params;
	struct settings_instance *parent_instance;
	const char *dict_name, *error;
	int ret;

	if (strcmp(set->portguard_state, "dict") != 0) {
		*error_r = t_strdup_printf("portguard_state=%s: Dovecot 2.4 "
			"has no dict URIs: use portguard_state = dict and "
			"portguard_state_dict { dict <driver> { ... } }",
			set->portguard_state);
		return -1;
	}
	settings_event_add_filter_name(state->event, PORTGUARD_DICT_FILTER);
	/* portguard_state_timeout bounds every wait for Redis: "*\/" makes
	   the override win over a redis_request_timeout in any filter */
	parent_instance = settings_instance_find(state->event);
	state->set_instance = parent_instance != NULL ?
		settings_instance_dup(parent_instance) :
		settings_instance_new(
			master_service_get_settings_root(master_service));
	settings_override(state->set_instance, "*/redis_request_timeout",
			  t_strdup_printf("%ums", rl->timeout_msecs),
			  SETTINGS_OVERRIDE_TYPE_CODE);
	event_set_ptr(state->event, SETTINGS_EVENT_INSTANCE,
		      state->set_instance);

	ret = dict_init_auto(state->event, &state->dict, &error);
	if (ret <= 0) {
		*error_r = t_strdup_printf("portguard_state=dict: %s%s", error,
			ret < 0 ? "" : " (add portguard_state_dict { dict <driver> "
			"{ ... } } at the top level)");
		return -1;
	}
	if ((state->dict->flags & DICT_DRIVER_FLAG_SUPPORT_EXPIRE_SECS) != 0)
		state->op_set.expire_secs = portguard_dict_expire_secs(rl);

	if (strcmp(state->dict->name, "redis") == 0 &&
	    (dict_name = portguard_dict_first_name(state->event)) != NULL) {
		if (portguard_dict_redis_settings(state->event, dict_name,
						  &params, &error) < 0) {
			*error_r = t_strdup_printf("portguard_state=dict: "
				"redis settings: %s", error);
			dict_deinit(&state->dict);
			return -1;
		}
		portguard_dict_set_redis(state, &params);
	}
	return 0;
}
#else
static bool portguard_uri_has_param(const char *uri, const char *param)
{
	const char *p = strstr(uri, param);

	return p != NULL && (p == uri || p[-1] == ':');
}

/* Complete a redis: URI with the timeout and expiry portguard needs. */
static const char *
portguard_dict_redis_uri(const char *uri,
			 const struct portguard_rl_settings *rl)
{
	string_t *str = t_str_new(128);

	str_append(str, uri);
	if (!portguard_uri_has_param(uri, "timeout_msecs="))
		str_printfa(str, ":timeout_msecs=%u", rl->timeout_msecs);
	if (!portguard_uri_has_param(uri, "expire_secs=")) {
		str_printfa(str, ":expire_secs=%u",
			    portguard_dict_expire_secs(rl));
	}
	return str_c(str);
}

static int portguard_dict_init(struct portguard_state_dict *state,
			       const struct portguard_settings *set,
			       const char *base_dir, const char **error_r)
{
	struct portguard_redis_params params;
	struct dict_settings dict_set;
	const char *uri, *error;

	if (strncmp(set->portguard_state, "dict:", 5) != 0) {
		*error_r = t_strdup_printf("portguard_state=%s: "
			"Dovecot 2.3 takes dict:<uri> or dict:<dict name>",
			set->portguard_state);
		return -1;
	}
	uri = set->portguard_state + 5;
	if (strchr(uri, ':') == NULL) {
		/* a dict name: ask the dict service */
		uri = t_strdup_printf("proxy::%s", uri);
	}
	if (strncmp(uri, "redis:", 6) == 0) {
		uri = portguard_dict_redis_uri(uri, state->state.rl);
		portguard_redis_params_parse_uri(uri + 6, &params);
		portguard_dict_set_redis(state, &params);
	}

	i_zero(&dict_set);
	dict_set.base_dir = base_dir;
	dict_set.event_parent = state->event;
	if (dict_init(uri, &dict_set, &state->dict, &error) < 0) {
		*error_r = t_strdup_printf("portguard_state=%s: %s",
					   set->portguard_state, error);
		return -1;
	}
	return 0;
}
#endif

int portguard_state_dict_open(const struct portguard_settings *set,
			      const struct portguard_rl_settings *rl,
			      const char *base_dir,
			      struct portguard_state **state_r,
			      const char **error_r)
{
	struct portguard_state_dict *state;

	state = i_new(struct portguard_state_dict, 1);
	state->state.v = &portguard_state_dict_vfuncs;
	state->state.rl = rl;
	state->event = event_create(NULL);
	event_set_append_log_prefix(state->event, "portguard: ");
	event_set_min_log_level(state->event, LOG_TYPE_FATAL);

	dict_drivers_register_builtin();
	if (portguard_dict_init(state, set, base_dir, error_r) < 0) {
		dict_drivers_unregister_builtin();
		portguard_dict_free(state);
		return -1;
	}
	*state_r = &state->state;
	return 0;
}

static void portguard_state_dict_close(struct portguard_state *_state)
{
	struct portguard_state_dict *state = DICT_STATE(_state);

	dict_wait(state->dict);
	dict_deinit(&state->dict);
	dict_drivers_unregister_builtin();
	portguard_dict_free(state);
}

/* Look up a number; absent is 0. */
static int portguard_dict_lookup_uint(struct portguard_state_dict *state,
				      const char *key, unsigned int *value_r,
				      const char **error_r)
{
	/* dict_lookup() reads *error_r even on success: initialize it */
	const char *value = NULL, *error = NULL;
	int ret;

	*value_r = 0;
	ret = dict_lookup(state->dict, &state->op_set,
			  pool_datastack_create(), key, &value, &error);
	if (ret < 0) {
		*error_r = t_strdup_printf("dict lookup %s: %s", key, error);
		return -1;
	}
	if (ret > 0 && str_to_uint(value, value_r) < 0)
		*value_r = 0;
	return 0;
}

/* The failure counters of the fixed window of now and the one before. */
static int portguard_dict_lookup_windows(struct portguard_state_dict *state,
					 const struct portguard_rl_key *key,
					 uint32_t now, unsigned int *cur_r,
					 unsigned int *prev_r,
					 const char **error_r)
{
	uint32_t slot = now / state->state.rl->config.fail_window;

	*prev_r = 0;
	if (portguard_dict_lookup_uint(state, portguard_dict_fail_key(key,
						slot), cur_r, error_r) < 0)
		return -1;
	if (slot > 0 &&
	    portguard_dict_lookup_uint(state, portguard_dict_fail_key(key,
						slot - 1), prev_r, error_r) < 0)
		return -1;
	return 0;
}

/* Look up key's ban history into a zeroed entry (absent or unreadable
   history is no history). */
static int portguard_dict_lookup_history(struct portguard_state_dict *state,
					 const struct portguard_rl_key *key,
					 struct portguard_rl_entry *entry_r,
					 bool *found_r, const char **error_r)
{
	const char *dkey = portguard_dict_ban_key(key);
	/* dict_lookup() reads *error_r even on success: initialize it */
	const char *value = NULL, *error = NULL;
	int ret;

	i_zero(entry_r);
	*found_r = FALSE;
	ret = dict_lookup(state->dict, &state->op_set,
			  pool_datastack_create(), dkey, &value, &error);
	if (ret < 0) {
		*error_r = t_strdup_printf("dict lookup %s: %s", dkey, error);
		return -1;
	}
	if (ret > 0 && portguard_rl_history_parse(value, entry_r) == 0)
		*found_r = TRUE;
	return 0;
}

struct portguard_dict_commit_ctx {
	bool done;
	int ret;
	char *error;
};

static void
portguard_dict_commit_callback(const struct dict_commit_result *result,
			       struct portguard_dict_commit_ctx *ctx)
{
	ctx->done = TRUE;
	ctx->ret = result->ret;
	if (result->ret < 0)
		ctx->error = i_strdup(result->error);
}

/* Commit and wait (bounded by the dict's timeout). Dovecot 2.3's redis
   driver calls the callback of a synchronous commit twice (a use after
   free), so this commits asynchronously and waits for it. */
static int portguard_dict_commit(struct portguard_state_dict *state,
				 struct dict_transaction_context **trans,
				 const char *what, const char **error_r)
{
	struct portguard_dict_commit_ctx ctx;

	i_zero(&ctx);
	dict_transaction_commit_async(trans, portguard_dict_commit_callback,
				      &ctx);
	if (!ctx.done)
		dict_wait(state->dict);
	if (!ctx.done) {
		*error_r = t_strdup_printf("dict commit (%s): no answer",
					   what);
		return -1;
	}
	if (ctx.ret < 0) {
		*error_r = t_strdup_printf("dict commit (%s): %s", what,
					   ctx.error);
		i_free(ctx.error);
		return -1;
	}
	return 0;
}

static int
portguard_state_dict_check(struct portguard_state *_state,
			   const struct portguard_rl_key *key, uint32_t now,
			   struct portguard_state_result *result_r,
			   const char **error_r)
{
	struct portguard_state_dict *state = DICT_STATE(_state);
	struct portguard_rl_entry entry;
	bool found;

	if (portguard_dict_lookup_history(state, key, &entry, &found,
					  error_r) < 0)
		return -1;
	result_r->banned = portguard_rl_is_banned(&entry, now,
						  &result_r->remaining_secs);
	result_r->ban_level = entry.ban_level;
	return 0;
}

/* Forget the failures of the current and the previous window. */
static void portguard_dict_unset_failures(struct portguard_state_dict *state,
					  struct dict_transaction_context *trans,
					  const struct portguard_rl_key *key,
					  uint32_t now)
{
	uint32_t slot = now / state->state.rl->config.fail_window;

	dict_unset(trans, portguard_dict_fail_key(key, slot));
	if (slot > 0)
		dict_unset(trans, portguard_dict_fail_key(key, slot - 1));
}

/* Write a new automatic ban record for key at now (from the history in
   entry). */
static int portguard_dict_start_ban(struct portguard_state_dict *state,
				    const struct portguard_rl_key *key,
				    uint32_t now,
				    struct portguard_rl_entry *entry,
				    struct portguard_state_result *result_r,
				    const char **error_r)
{
	const struct portguard_rl_config *config = &state->state.rl->config;
	struct dict_transaction_context *trans;
	char buf[96];

	result_r->ban_secs = portguard_rl_auto_ban(entry, config, now);
	result_r->ban_level = entry->ban_level;
	(void)portguard_rl_is_banned(entry, now, &result_r->remaining_secs);
	trans = dict_transaction_begin(state->dict, &state->op_set);
	dict_set(trans, portguard_dict_ban_key(key),
		 portguard_rl_history_to_str(entry, buf, sizeof(buf)));
	return portguard_dict_commit(state, &trans, "ban", error_r);
}

/* If the history says banned at now, fill result_r so and return TRUE. */
static bool
portguard_dict_result_banned(const struct portguard_rl_entry *entry,
			     uint32_t now,
			     struct portguard_state_result *result_r)
{
	if (!portguard_rl_is_banned(entry, now, &result_r->remaining_secs))
		return FALSE;
	result_r->banned = TRUE;
	result_r->ban_level = entry->ban_level;
	return TRUE;
}

static int
portguard_state_dict_attempt(struct portguard_state *_state,
			     const struct portguard_rl_key *key, uint32_t now,
			     struct portguard_state_result *result_r,
			     const char **error_r)
{
	struct portguard_state_dict *state = DICT_STATE(_state);
	const struct portguard_rl_config *config = &_state->rl->config;
	struct dict_transaction_context *trans;
	struct portguard_rl_entry entry;
	uint32_t slot = now / config->fail_window;
	unsigned int cur, prev = 0;
	bool found;

	if (portguard_dict_lookup_history(state, key, &entry, &found,
					  error_r) < 0)
		return -1;
	if (portguard_dict_result_banned(&entry, now, result_r)) {
		/* refused unchecked: nothing to count */
		return 0;
	}
	portguard_rl_snapshot_take(&entry, &result_r->before);

	/* count: an atomic increment, exact whoever else counts */
	trans = dict_transaction_begin(state->dict, &state->op_set);
	dict_atomic_inc(trans, portguard_dict_fail_key(key, slot), 1);
	if (portguard_dict_commit(state, &trans, "count", error_r) < 0)
		return -1;

	/* The total is read after the increment, so it includes this
	   attempt and every one counted before it: only attempts that read
	   a total within the limit may go on, which lets through at most
	   limit of them whatever the concurrency. */
	if (portguard_dict_lookup_windows(state, key, now, &cur, &prev,
					  error_r) < 0)
		return -1;
	result_r->failures = portguard_rl_window_estimate(cur, prev, now,
							  config->fail_window);
	result_r->ban_level = entry.ban_level;
	if (result_r->failures < config->fail_limit)
		return 0;

	/* at or past the limit: banned by someone meanwhile? */
	if (portguard_dict_lookup_history(state, key, &entry, &found,
					  error_r) < 0)
		return -1;
	if (portguard_dict_result_banned(&entry, now, result_r))
		return 0;
	if (portguard_dict_start_ban(state, key, now, &entry, result_r,
				     error_r) < 0)
		return -1;
	result_r->new_ban = TRUE;
	if (result_r->failures > config->fail_limit) {
		/* racing attempts went past the limit: this one is not
		   checked (the ban is in force for it too) */
		result_r->banned = TRUE;
	}
	result_r->failures = config->fail_limit;
	return 0;
}

static int
portguard_state_dict_attempt_end(struct portguard_state *_state,
				 const struct portguard_rl_key *key,
				 uint32_t started,
				 const struct portguard_state_result *attempt,
				 enum portguard_attempt_outcome outcome,
				 const char **error_r)
{
	struct portguard_state_dict *state = DICT_STATE(_state);
	const struct portguard_rl_config *config = &_state->rl->config;
	struct dict_transaction_context *trans;
	struct portguard_rl_entry entry;
	char buf[96];
	bool found;

	if (outcome == PORTGUARD_ATTEMPT_FAILED)
		return 0;
	trans = dict_transaction_begin(state->dict, &state->op_set);
	if (attempt->new_ban) {
		/* undo the ban this attempt started, if still in force */
		if (portguard_dict_lookup_history(state, key, &entry, &found,
						  error_r) < 0) {
			dict_transaction_rollback(&trans);
			return -1;
		}
		portguard_rl_undo_ban(&entry, &attempt->before, started);
		dict_set(trans, portguard_dict_ban_key(key),
			 portguard_rl_history_to_str(&entry, buf,
						     sizeof(buf)));
	}
	if (outcome == PORTGUARD_ATTEMPT_SUCCEEDED)
		portguard_dict_unset_failures(state, trans, key, started);
	else {
		dict_atomic_inc(trans, portguard_dict_fail_key(key,
				started / config->fail_window), -1);
	}
	return portguard_dict_commit(state, &trans, "attempt end", error_r);
}

static int
portguard_state_dict_ban(struct portguard_state *_state,
			 const struct portguard_rl_key *key, uint32_t now,
			 unsigned int secs, unsigned int *secs_r,
			 const char **error_r)
{
	struct portguard_state_dict *state = DICT_STATE(_state);
	struct dict_transaction_context *trans;
	struct portguard_rl_entry entry;
	char buf[96];
	bool found;

	if (portguard_dict_lookup_history(state, key, &entry, &found,
					  error_r) < 0)
		return -1;
	*secs_r = portguard_rl_ban(&entry, &_state->rl->config, now, secs);
	trans = dict_transaction_begin(state->dict, &state->op_set);
	dict_set(trans, portguard_dict_ban_key(key),
		 portguard_rl_history_to_str(&entry, buf, sizeof(buf)));
	portguard_dict_unset_failures(state, trans, key, now);
	return portguard_dict_commit(state, &trans, "ban", error_r);
}

static int
portguard_state_dict_unban(struct portguard_state *_state,
			   const struct portguard_rl_key *key, uint32_t now,
			   bool *found_r, const char **error_r)
{
	struct portguard_state_dict *state = DICT_STATE(_state);
	struct dict_transaction_context *trans;
	struct portguard_rl_entry entry;
	unsigned int cur, prev = 0;
	char buf[96];
	bool found;

	if (portguard_dict_lookup_history(state, key, &entry, &found,
					  error_r) < 0 ||
	    portguard_dict_lookup_windows(state, key, now, &cur, &prev,
					  error_r) < 0)
		return -1;
	*found_r = found || cur > 0 || prev > 0;
	if (!*found_r)
		return 0;
	portguard_rl_unban(&entry, now);
	trans = dict_transaction_begin(state->dict, &state->op_set);
	if (found) {
		dict_set(trans, portguard_dict_ban_key(key),
			 portguard_rl_history_to_str(&entry, buf,
						     sizeof(buf)));
	}
	portguard_dict_unset_failures(state, trans, key, now);
	return portguard_dict_commit(state, &trans, "unban", error_r);
}

/* ---- listing and flushing: Redis only, straight over its protocol ---- */

struct portguard_dict_iter_ctx {
	struct portguard_state_dict *state;
	portguard_state_iter_func_t *func;
	void *context;
	uint32_t now;
};

static bool portguard_dict_iter_ban(const char *name, const char *value,
				    void *context)
{
	struct portguard_dict_iter_ctx *ctx = context;
	const struct portguard_rl_settings *rl = ctx->state->state.rl;
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	const char *error;

	if (portguard_rl_key_parse(name, rl->ipv4_prefix, rl->ipv6_prefix,
				   &key, &error) < 0 ||
	    portguard_rl_history_parse(value, &entry) < 0)
		return TRUE;
	entry.last_seen = entry.last_ban_start;
	return ctx->func(&key, &entry, ctx->context);
}

static int
portguard_state_dict_iterate(struct portguard_state *_state,
			     portguard_state_iter_func_t *func, void *context,
			     const char **error_r)
{
	struct portguard_state_dict *state = DICT_STATE(_state);
	struct portguard_dict_iter_ctx ctx = {
		.state = state,
		.func = func,
		.context = context,
	};

	if (!state->has_redis) {
		*error_r = "listing needs the dict's redis driver";
		return -1;
	}
	return portguard_redis_scan(&state->redis, "portguard/b/",
				    _state->rl->timeout_msecs,
				    portguard_dict_iter_ban, &ctx, error_r);
}

static int
portguard_state_dict_flush(struct portguard_state *_state,
			   const char **error_r)
{
	struct portguard_state_dict *state = DICT_STATE(_state);

	if (!state->has_redis) {
		*error_r = "flushing needs the dict's redis driver";
		return -1;
	}
	return portguard_redis_delete(&state->redis, "portguard/",
				      _state->rl->timeout_msecs, error_r);
}

static const struct portguard_state_vfuncs portguard_state_dict_vfuncs = {
	.close = portguard_state_dict_close,
	.check = portguard_state_dict_check,
	.attempt = portguard_state_dict_attempt,
	.attempt_end = portguard_state_dict_attempt_end,
	.iterate = portguard_state_dict_iterate,
	.ban = portguard_state_dict_ban,
	.unban = portguard_state_dict_unban,
	.flush = portguard_state_dict_flush,
};

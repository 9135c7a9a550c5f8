#ifndef PORTGUARD_STATE_H
#define PORTGUARD_STATE_H

/* Where failure counts and bans live, for all login processes at once:
   "shm" (a shared table file in base_dir, the default) or "dict:<uri>"
   (Dovecot's dict layer, e.g. Redis, for clusters). Opened once per
   process in plugin init (as root, before chroot). */

#include "portguard-ratelimit.h"
#include "portguard-knownuser.h"

struct portguard_settings;

enum portguard_rl_mode {
	PORTGUARD_RL_OFF = 0,
	PORTGUARD_RL_MONITOR,
	PORTGUARD_RL_ENFORCE,
};

/* Rate-limit settings in usable form. */
struct portguard_rl_settings {
	enum portguard_rl_mode mode;
	struct portguard_rl_config config;
	unsigned int ipv4_prefix, ipv6_prefix;
	struct portguard_netlist exempt_networks;
	/* implicit TLS: close a banned client before the handshake */
	bool ban_drop;
	/* backend down: refuse instead of letting logins go on */
	bool fail_closed;
	unsigned int timeout_msecs;
	/* lockout traps: known users (period 0 = off) */
	struct portguard_known_config known;
};

struct portguard_state_result {
	/* check: banned now; attempt: banned before it (refuse it) */
	bool banned;
	/* attempt: counting it reached the limit and started a ban */
	bool new_ban;
	unsigned int remaining_secs;
	unsigned int ban_secs;
	unsigned int ban_level;
	unsigned int failures;
	/* attempt: the ban fields before it, to undo its ban */
	struct portguard_rl_snapshot before;
};

/* How an AUTH counted in advance by portguard_state_attempt() ended. */
enum portguard_attempt_outcome {
	/* failed or aborted: it stays counted (and its ban, if any) */
	PORTGUARD_ATTEMPT_FAILED = 0,
	/* succeeded: the key's failures are forgotten, its ban undone */
	PORTGUARD_ATTEMPT_SUCCEEDED,
	/* neither (temporary failure, wrong mechanism, ...): given back */
	PORTGUARD_ATTEMPT_NOT_COUNTED,
};

struct portguard_state;

/* Parse the rate-limit part of set. -1 with *error_r naming the key. */
int portguard_rl_settings_parse(const struct portguard_settings *set,
				struct portguard_rl_settings *rl_r,
				const char **error_r);

/* Open the backend named by set->portguard_state. base_dir is Dovecot's
   base_dir: the default place of the shm file (a tmpfs such as
   /run/dovecot: no disk writeback of the mapped pages, and the cheapest
   page faults for the login processes; it survives Dovecot restarts but not
   reboots) and of relative dict proxy sockets. *warning_r is set if
   something worth logging happened (a corrupt table rebuilt). */
int portguard_state_open(const struct portguard_settings *set,
			 const struct portguard_rl_settings *rl,
			 const char *base_dir,
			 struct portguard_state **state_r,
			 const char **warning_r, const char **error_r);
void portguard_state_close(struct portguard_state **state);

/* Is key banned at now? 0 with *result_r, -1 with *error_r (backend
   unusable or too slow). */
int portguard_state_check(struct portguard_state *state,
			  const struct portguard_rl_key *key, uint32_t now,
			  struct portguard_state_result *result_r,
			  const char **error_r);
/* An AUTH starts at now: unless key is banned already (result_r->banned:
   refuse it, nothing counted), count it as a failure in advance, so that
   parallel AUTHs cannot get more password checks than the limit. When
   this reaches the limit, the ban starts now (result_r->new_ban) and this
   AUTH is still checked. */
int portguard_state_attempt(struct portguard_state *state,
			    const struct portguard_rl_key *key, uint32_t now,
			    struct portguard_state_result *result_r,
			    const char **error_r);
/* The AUTH counted by portguard_state_attempt() at started (with its
   result) ended with outcome. */
int portguard_state_attempt_end(struct portguard_state *state,
				const struct portguard_rl_key *key,
				uint32_t started,
				const struct portguard_state_result *attempt,
				enum portguard_attempt_outcome outcome,
				const char **error_r);

/* ---- known users (lockout traps, see portguard-knownuser.h) ---- */

/* user authenticated successfully from key at now: known there for
   rl->known.period. */
int portguard_state_known_success(struct portguard_state *state,
				  const struct portguard_rl_key *key,
				  const char *user, uint32_t now,
				  const char **error_r);
/* A failed AUTH of user from key at now: *verdict_r says whether the
   user's own limit absorbed it (then it must not count against the
   key). */
int portguard_state_known_fail(struct portguard_state *state,
			       const struct portguard_rl_key *key,
			       const char *user, uint32_t now,
			       enum portguard_known_verdict *verdict_r,
			       const char **error_r);

/* ---- administration (doveadm) ---- */

typedef bool portguard_state_iter_func_t(const struct portguard_rl_key *key,
					 const struct portguard_rl_entry *entry,
					 void *context);
/* Call func for every tracked key (stops when it returns false). */
int portguard_state_iterate(struct portguard_state *state,
			    portguard_state_iter_func_t *func, void *context,
			    const char **error_r);
/* Ban key for secs from now (0: as long as its next automatic ban would
   be); *secs_r gets the length used. */
int portguard_state_ban(struct portguard_state *state,
			const struct portguard_rl_key *key, uint32_t now,
			unsigned int secs, unsigned int *secs_r,
			const char **error_r);
/* Lift key's ban and forget its failures. *found_r: the key was known. */
int portguard_state_unban(struct portguard_state *state,
			  const struct portguard_rl_key *key, uint32_t now,
			  bool *found_r, const char **error_r);
/* Forget everything. */
int portguard_state_flush(struct portguard_state *state,
			  const char **error_r);

#endif

#ifndef PORTGUARD_STATE_PRIVATE_H
#define PORTGUARD_STATE_PRIVATE_H

#include "portguard-state.h"

/* One backend of portguard_state (see portguard-state.h for the
   contracts of the operations). */
struct portguard_state_vfuncs {
	void (*close)(struct portguard_state *state);
	int (*check)(struct portguard_state *state,
		     const struct portguard_rl_key *key, uint32_t now,
		     struct portguard_state_result *result_r,
		     const char **error_r);
	int (*attempt)(struct portguard_state *state,
		       const struct portguard_rl_key *key, uint32_t now,
		       struct portguard_state_result *result_r,
		       const char **error_r);
	int (*attempt_end)(struct portguard_state *state,
			   const struct portguard_rl_key *key,
			   uint32_t started,
			   const struct portguard_state_result *attempt,
			   enum portguard_attempt_outcome outcome,
			   const char **error_r);
	/* key is the pseudo-key of the (address key, user) pair */
	int (*known_success)(struct portguard_state *state,
			     const struct portguard_rl_key *key,
			     uint32_t now, const char **error_r);
	int (*known_fail)(struct portguard_state *state,
			  const struct portguard_rl_key *key, uint32_t now,
			  enum portguard_known_verdict *verdict_r,
			  const char **error_r);
	int (*iterate)(struct portguard_state *state,
		       portguard_state_iter_func_t *func, void *context,
		       const char **error_r);
	int (*ban)(struct portguard_state *state,
		   const struct portguard_rl_key *key, uint32_t now,
		   unsigned int secs, unsigned int *secs_r,
		   const char **error_r);
	int (*unban)(struct portguard_state *state,
		     const struct portguard_rl_key *key, uint32_t now,
		     bool *found_r, const char **error_r);
	int (*flush)(struct portguard_state *state, const char **error_r);
};

struct portguard_state {
	const struct portguard_state_vfuncs *v;
	const struct portguard_rl_settings *rl;
};

int portguard_state_shm_open(const struct portguard_settings *set,
			     const struct portguard_rl_settings *rl,
			     const char *base_dir,
			     struct portguard_state **state_r,
			     const char **warning_r, const char **error_r);
int portguard_state_dict_open(const struct portguard_settings *set,
			      const struct portguard_rl_settings *rl,
			      const char *base_dir,
			      struct portguard_state **state_r,
			      const char **error_r);

#endif

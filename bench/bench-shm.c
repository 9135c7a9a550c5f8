/* Benchmark of the shared state table (portguard-shm.c).

   Build and run from the top of the source tree:

     gcc -std=gnu99 -O2 -Wall -Isrc/core -o bench/bench-shm \
         bench/bench-shm.c src/core/portguard-cidr.c \
         src/core/portguard-ratelimit.c src/core/portguard-siphash.c \
         src/core/portguard-shm.c -lpthread
     ./bench/bench-shm [-d dir] [-s size_mib] [-k keys] [-n ops]

   It creates a table of size_mib (default 128) MiB in a new directory
   under dir (default /tmp), inserts keys (default 1,000,000) IPv4 keys,
   reports how many were evicted and the bytes per key (file size / keys)
   and per slot (file size / capacity), then measures lookups and updates
   (portguard_rl_fail() under the lock)
   on random keys in one process, and in 2 and 4 forked processes at once
   (per-process and total rates). Every operation includes the fstat()
   check the table does before touching the mapping, two SipHash values
   (the key's two candidate buckets) and locking both buckets' stripes. The default run takes
   well under 30 seconds. */

#include "portguard-shm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define BENCH_NOW 1700000000U

static const struct portguard_rl_config bench_config = {
	5, 600, 900, 86400
};

static double bench_time(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_key(struct portguard_rl_key *key_r, unsigned int n)
{
	memset(key_r, 0, sizeof(*key_r));
	key_r->addr.family = 4;
	key_r->addr.bytes[0] = (uint8_t)(n >> 24) | 0x40;
	key_r->addr.bytes[1] = (uint8_t)(n >> 16);
	key_r->addr.bytes[2] = (uint8_t)(n >> 8);
	key_r->addr.bytes[3] = (uint8_t)n;
	key_r->prefix = 32;
}

/* xorshift: cheap random key numbers */
static unsigned int bench_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return (unsigned int)(*state >> 16);
}

static bool bench_fail_func(struct portguard_rl_entry *entry, bool created,
			    void *context)
{
	unsigned int secs;

	(void)created;
	(void)context;
	(void)portguard_rl_fail(entry, &bench_config, BENCH_NOW, &secs);
	/* never let the key get banned: keep measuring the same path */
	portguard_rl_success(entry, BENCH_NOW);
	return true;
}

static bool bench_set_func(struct portguard_rl_entry *entry, bool created,
			   void *context)
{
	(void)created;
	(void)context;
	entry->last_ban_start = 1;
	return true;
}

enum bench_op { BENCH_LOOKUP, BENCH_UPDATE, BENCH_UPDATE_HOT };

static const char *const bench_op_names[] = {
	"lookup", "update", "update, 1 hot key"
};

/* Run ops operations; returns the seconds taken, < 0 on error. */
static double bench_run(struct portguard_shm *shm, enum bench_op op,
			unsigned int keys, unsigned int ops, uint64_t seed)
{
	struct portguard_rl_entry entry;
	struct portguard_rl_key key;
	const char *error;
	unsigned int i, found = 0;
	double start = bench_time();
	int ret;

	bench_key(&key, 0);
	for (i = 0; i < ops; i++) {
		if (op != BENCH_UPDATE_HOT)
			bench_key(&key, bench_random(&seed) % keys);
		if (op == BENCH_LOOKUP)
			ret = portguard_shm_lookup(shm, &key, &entry, &error);
		else {
			ret = portguard_shm_update(shm, &key, BENCH_NOW, true,
						   bench_fail_func, NULL,
						   &error);
		}
		if (ret < 0) {
			fprintf(stderr, "%s failed: %s\n", bench_op_names[op],
				error);
			return -1;
		}
		found += (unsigned int)ret;
	}
	if (found < ops / 2)
		fprintf(stderr, "warning: only %u of %u keys found\n", found,
			ops);
	return bench_time() - start;
}

static int bench_parallel(const char *path, uint64_t size, unsigned int procs,
			  enum bench_op op, unsigned int keys, unsigned int ops)
{
	int start_pipe[2], result_pipe[2];
	double secs, max_secs = 0, sum_rate = 0;
	unsigned int i;
	pid_t pid;
	int status, failed = 0;

	if (pipe(start_pipe) < 0 || pipe(result_pipe) < 0) {
		perror("pipe");
		return -1;
	}
	for (i = 0; i < procs; i++) {
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return -1;
		}
		if (pid == 0) {
			struct portguard_shm *shm;
			const char *warning, *error;
			char c;

			(void)close(start_pipe[1]);
			if (portguard_shm_open(path, size, 0600, &shm,
					       &warning, &error) < 0) {
				fprintf(stderr, "open: %s\n", error);
				_exit(1);
			}
			/* wait until every process is ready */
			if (read(start_pipe[0], &c, 1) != 0)
				_exit(1);
			secs = bench_run(shm, op, keys, ops, 0x9e3779b97f4a7c15ULL *
					 (i + 2));
			if (write(result_pipe[1], &secs, sizeof(secs)) !=
			    sizeof(secs))
				_exit(1);
			portguard_shm_close(&shm);
			_exit(secs < 0 ? 1 : 0);
		}
	}
	(void)close(start_pipe[0]);
	(void)close(result_pipe[1]);
	/* a short pause so every child has mapped the table */
	(void)usleep(200000);
	(void)close(start_pipe[1]);
	for (i = 0; i < procs; i++) {
		if (read(result_pipe[0], &secs, sizeof(secs)) !=
		    sizeof(secs) || secs <= 0) {
			failed = 1;
			break;
		}
		if (secs > max_secs)
			max_secs = secs;
		sum_rate += ops / secs;
	}
	(void)close(result_pipe[0]);
	while (wait(&status) > 0) {
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	}
	if (failed) {
		fprintf(stderr, "a benchmark process failed\n");
		return -1;
	}
	printf("  %-18s %u procs: %9.0f ops/s per process (%6.0f ns/op), "
	       "%9.0f ops/s total\n", bench_op_names[op], procs,
	       sum_rate / procs, 1e9 * procs / sum_rate,
	       procs * (double)ops / max_secs);
	return 0;
}

static void bench_usage(void)
{
	fprintf(stderr, "usage: bench-shm [-d dir] [-s size_mib] [-k keys] "
		"[-n ops]\n");
	exit(2);
}

int main(int argc, char *argv[])
{
	const char *parent = "/tmp", *warning, *error;
	unsigned int size_mib = 128, keys = 1000000, ops = 2000000;
	unsigned int procs[] = { 2, 4 };
	struct portguard_rl_key key;
	struct portguard_shm *shm;
	char dir[256], path[300], cmd[320];
	uint64_t size;
	double secs;
	unsigned int i, p, used;
	enum bench_op op;
	int c, ret = 0;

	while ((c = getopt(argc, argv, "d:s:k:n:")) != -1) {
		switch (c) {
		case 'd': parent = optarg; break;
		case 's': size_mib = (unsigned int)atoi(optarg); break;
		case 'k': keys = (unsigned int)atoi(optarg); break;
		case 'n': ops = (unsigned int)atoi(optarg); break;
		default: bench_usage();
		}
	}
	if (size_mib == 0 || keys == 0 || ops == 0)
		bench_usage();
	size = (uint64_t)size_mib * 1024 * 1024;
	(void)snprintf(dir, sizeof(dir), "%s/bench-shm.XXXXXX", parent);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	(void)snprintf(path, sizeof(path), "%s/state", dir);

	secs = bench_time();
	if (portguard_shm_open(path, size, 0600, &shm, &warning,
			       &error) < 0) {
		fprintf(stderr, "open: %s\n", error);
		return 1;
	}
	printf("table: %u MiB, %u slots (%u-way buckets), %.1f bytes per slot; "
	       "created in %.3f s\n", size_mib, portguard_shm_capacity(shm),
	       PORTGUARD_SHM_WAYS, (double)size / portguard_shm_capacity(shm),
	       bench_time() - secs);
	if (keys > portguard_shm_capacity(shm))
		printf("note: more keys than slots, lookups will miss\n");

	secs = bench_time();
	for (i = 0; i < keys; i++) {
		bench_key(&key, i);
		if (portguard_shm_update(shm, &key, BENCH_NOW, true,
					 bench_set_func, NULL, &error) < 0) {
			fprintf(stderr, "insert: %s\n", error);
			return 1;
		}
	}
	secs = bench_time() - secs;
	used = portguard_shm_count(shm);
	printf("insert %u keys: %.0f ops/s (%.0f ns/op); %u used slots "
	       "(%.1f%% full), %u keys evicted; %.1f bytes per key\n",
	       keys, keys / secs, 1e9 * secs / keys, used,
	       100.0 * used / portguard_shm_capacity(shm),
	       keys > used ? keys - used : 0, (double)size / keys);

	printf("1 process, %u ops each:\n", ops);
	for (op = BENCH_LOOKUP; op <= BENCH_UPDATE_HOT; op++) {
		secs = bench_run(shm, op, keys, ops, 0x2545f4914f6cdd1dULL);
		if (secs < 0) {
			ret = 1;
			break;
		}
		printf("  %-18s %9.0f ops/s (%6.0f ns/op)\n",
		       bench_op_names[op], ops / secs, 1e9 * secs / ops);
	}
	for (p = 0; p < sizeof(procs) / sizeof(procs[0]) && ret == 0; p++) {
		printf("%u processes at once, %u ops each "
		       "(this machine has %ld CPUs):\n", procs[p],
		       ops / procs[p], sysconf(_SC_NPROCESSORS_ONLN));
		for (op = BENCH_LOOKUP; op <= BENCH_UPDATE_HOT && ret == 0;
		     op++) {
			if (bench_parallel(path, size, procs[p], op, keys,
					   ops / procs[p]) < 0)
				ret = 1;
		}
	}
	portguard_shm_close(&shm);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		ret = 1;
	return ret;
}

/* The shared state table. Pure C (POSIX), no Dovecot headers.

   File layout (all fields in host byte order; the file is not portable
   between machines and need not be):

     0     struct portguard_shm_header (magic, sizes, secret, checksum)
     128   stripe_count lock stripes, 64 bytes each (a robust mutex)
     8192  bucket_count buckets of PORTGUARD_SHM_WAYS 100-byte slots
           (the tail of the file after the last whole bucket is unused)

   Two-choice hashing: a key has two candidate buckets, from two SipHash
   values of the key (the same secret, different tweak bytes). An update
   locks the stripes of both (the lower stripe index first, once if they
   share a stripe), so a key is never in both buckets: it is looked for
   in both, and only inserted (into the less loaded one, the first on a
   tie) when it is in neither. Keys never move between buckets.

   Every field the table's geometry depends on is copied into the process
   at open and used from there, so a header scribbled over later cannot
   send an access outside the mapping. Slots are copied out, changed and
   copied back under the stripe lock, so a process killed inside an
   update callback leaves the old entry, not a half-written one.

   portguard_shm_iterate() visits buckets one at a time, in stripe order
   and slot order within a bucket; when the table is full, every run of
   PORTGUARD_SHM_WAYS consecutive entries is one bucket (the unit test
   relies on this to find a bucket's members). */

#include "portguard-knownuser.h"
#include "portguard-shm.h"
#include "portguard-siphash.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>

/* 1: 128-byte slots, 8 ways, one bucket per key
   2: 112-byte slots, 16 ways, two candidate buckets per key
   3: 100-byte slots (no padding): more slots for the same size */
#define PORTGUARD_SHM_VERSION 3
#define PORTGUARD_SHM_SLOT_SIZE 100
#define PORTGUARD_SHM_STRIPES_MAX 64
#define PORTGUARD_SHM_STRIPE_SIZE 64
#define PORTGUARD_SHM_STRIPES_OFFSET 128
#define PORTGUARD_SHM_HEADER_SIZE 8192
/* capacity must fit into an unsigned int; 64 GiB is plenty */
#define PORTGUARD_SHM_MAX_SIZE (64ULL * 1024 * 1024 * 1024)
#define PORTGUARD_SHM_BUCKET_SIZE \
	(PORTGUARD_SHM_SLOT_SIZE * PORTGUARD_SHM_WAYS)

static const uint8_t portguard_shm_magic[8] = {
	'P', 'G', 'S', 'H', 'M', 'T', 'B', 'L'
};

struct portguard_shm_header {
	uint8_t magic[8];
	uint32_t version;
	uint32_t header_size;
	uint32_t slot_size;
	uint32_t ways;
	uint32_t entry_size;
	uint32_t mutex_size;
	uint32_t bucket_count;
	uint32_t stripe_count;
	uint64_t file_size;
	uint8_t secret[PORTGUARD_SIPHASH_KEY_SIZE];
	/* SipHash-2-4 (all-zero key) of every byte above */
	uint64_t checksum;
};

struct portguard_shm_stripe {
	pthread_mutex_t mutex;
	uint8_t pad[PORTGUARD_SHM_STRIPE_SIZE - sizeof(pthread_mutex_t)];
};

struct portguard_shm_slot {
	struct portguard_rl_key key;
	/* 1 = in use, 0 = free; anything else is damage */
	uint8_t used;
	uint8_t unused;
	struct portguard_rl_entry entry;
};

/* a larger PORTGUARD_RL_MAX_LIMIT does not fit: 1,000,000 keys must fit
   in 128 MiB with room to spare (see portguard-shm.h) */
_Static_assert(sizeof(struct portguard_shm_slot) == PORTGUARD_SHM_SLOT_SIZE,
	       "slots must be 100 bytes");
_Static_assert(offsetof(struct portguard_shm_slot, entry) == 20,
	       "slot layout changed");
_Static_assert(sizeof(struct portguard_shm_stripe) ==
	       PORTGUARD_SHM_STRIPE_SIZE, "stripes must be 64 bytes");
_Static_assert(sizeof(struct portguard_shm_header) <=
	       PORTGUARD_SHM_STRIPES_OFFSET, "header too large");
_Static_assert(PORTGUARD_SHM_STRIPES_OFFSET + PORTGUARD_SHM_STRIPES_MAX *
	       PORTGUARD_SHM_STRIPE_SIZE <= PORTGUARD_SHM_HEADER_SIZE,
	       "stripes do not fit into the header");
_Static_assert(PORTGUARD_SHM_MIN_SIZE >= PORTGUARD_SHM_HEADER_SIZE +
	       PORTGUARD_SHM_BUCKET_SIZE, "minimum size too small");
/* the promise of portguard-shm.h */
_Static_assert((128ULL * 1024 * 1024 - PORTGUARD_SHM_HEADER_SIZE) /
	       PORTGUARD_SHM_BUCKET_SIZE * PORTGUARD_SHM_WAYS >= 1000000,
	       "1,000,000 keys must fit into 128 MiB");

/* The two candidate buckets of a key and their stripes, stripe[0] <=
   stripe[1]. bucket[0] == bucket[1] is possible (the key then has one). */
struct portguard_shm_place {
	unsigned int bucket[2];
	unsigned int stripe[2];
};

struct portguard_shm {
	char *path;
	int fd;
	uint8_t *map;
	uint64_t size;

	struct portguard_shm_header *hdr;
	struct portguard_shm_stripe *stripes;
	struct portguard_shm_slot *slots;
	unsigned int bucket_count;
	unsigned int stripe_count;
	uint8_t secret[PORTGUARD_SIPHASH_KEY_SIZE];
};

static char portguard_shm_errbuf[512];
static char portguard_shm_warnbuf[512];

static const char *portguard_shm_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static const char *portguard_shm_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	(void)vsnprintf(portguard_shm_errbuf, sizeof(portguard_shm_errbuf),
			fmt, args);
	va_end(args);
	return portguard_shm_errbuf;
}

/* ---- geometry ---- */

static unsigned int portguard_shm_buckets_for(uint64_t size)
{
	return (unsigned int)((size - PORTGUARD_SHM_HEADER_SIZE) /
			      PORTGUARD_SHM_BUCKET_SIZE);
}

static unsigned int portguard_shm_stripes_for(unsigned int buckets)
{
	return buckets < PORTGUARD_SHM_STRIPES_MAX ?
		buckets : PORTGUARD_SHM_STRIPES_MAX;
}

static uint64_t
portguard_shm_header_checksum(const struct portguard_shm_header *hdr)
{
	static const uint8_t zero_key[PORTGUARD_SIPHASH_KEY_SIZE] = { 0 };

	return portguard_siphash24(zero_key, hdr,
		offsetof(struct portguard_shm_header, checksum));
}

/* Why the mapped file is unusable, or NULL if it is fine.
   The file is at least PORTGUARD_SHM_HEADER_SIZE bytes. */
static const char *
portguard_shm_invalid(const uint8_t *map, uint64_t file_size, char *buf,
		      size_t bufsize)
{
	const struct portguard_shm_header *hdr = (const void *)map;
	unsigned int buckets = portguard_shm_buckets_for(file_size);

	if (memcmp(hdr->magic, portguard_shm_magic,
		   sizeof(portguard_shm_magic)) != 0)
		return "bad magic";
	if (hdr->version != PORTGUARD_SHM_VERSION) {
		(void)snprintf(buf, bufsize,
			       "unsupported layout version %u (expected %u)",
			       hdr->version, PORTGUARD_SHM_VERSION);
		return buf;
	}
	if (hdr->header_size != PORTGUARD_SHM_HEADER_SIZE ||
	    hdr->slot_size != PORTGUARD_SHM_SLOT_SIZE ||
	    hdr->ways != PORTGUARD_SHM_WAYS ||
	    hdr->entry_size != sizeof(struct portguard_rl_entry) ||
	    hdr->mutex_size != sizeof(pthread_mutex_t))
		return "incompatible layout (header, slot, entry or lock size)";
	if (hdr->checksum != portguard_shm_header_checksum(hdr))
		return "header checksum mismatch";
	if (hdr->file_size != file_size) {
		(void)snprintf(buf, bufsize,
			       "file size %llu does not match the header "
			       "(%llu)", (unsigned long long)file_size,
			       (unsigned long long)hdr->file_size);
		return buf;
	}
	if (hdr->bucket_count != buckets ||
	    hdr->stripe_count != portguard_shm_stripes_for(buckets))
		return "inconsistent bucket or stripe count";
	return NULL;
}

static void portguard_shm_attach(struct portguard_shm *shm, const char *path,
				 int fd, uint8_t *map, uint64_t size)
{
	shm->path = strdup(path);
	shm->fd = fd;
	shm->map = map;
	shm->size = size;
	shm->hdr = (void *)map;
	shm->stripes = (void *)(map + PORTGUARD_SHM_STRIPES_OFFSET);
	shm->slots = (void *)(map + PORTGUARD_SHM_HEADER_SIZE);
	shm->bucket_count = portguard_shm_buckets_for(size);
	shm->stripe_count = portguard_shm_stripes_for(shm->bucket_count);
	memcpy(shm->secret, shm->hdr->secret, sizeof(shm->secret));
}

static void portguard_shm_stripe_repair(struct portguard_shm *shm,
					unsigned int stripe);

/* The attributes of every stripe mutex: robust, process-shared. */
static int portguard_shm_mutexattr_init(pthread_mutexattr_t *attr)
{
	int ret;

	if ((ret = pthread_mutexattr_init(attr)) != 0)
		return ret;
	if ((ret = pthread_mutexattr_setpshared(attr,
						PTHREAD_PROCESS_SHARED)) != 0 ||
	    (ret = pthread_mutexattr_setrobust(attr,
					       PTHREAD_MUTEX_ROBUST)) != 0)
		(void)pthread_mutexattr_destroy(attr);
	return ret;
}

/* Is this not a mutex made by portguard_shm_init()? Locking a damaged
   one can hang, or abort inside glibc (a priority-inheritance type with
   a made-up owner), so it is never attempted. glibc keeps the type in
   the mutex; elsewhere nothing is checked. */
static bool portguard_shm_mutex_damaged(const pthread_mutex_t *mutex)
{
#ifdef __GLIBC__
	static int kind = -1;
	pthread_mutexattr_t attr;
	pthread_mutex_t ref;

	if (kind == -1 && portguard_shm_mutexattr_init(&attr) == 0) {
		if (pthread_mutex_init(&ref, &attr) == 0) {
			kind = ref.__data.__kind;
			(void)pthread_mutex_destroy(&ref);
		}
		(void)pthread_mutexattr_destroy(&attr);
	}
	return kind != -1 && mutex->__data.__kind != kind;
#else
	(void)mutex;
	return false;
#endif
}

static void portguard_shm_detach(struct portguard_shm *shm)
{
	(void)munmap(shm->map, (size_t)shm->size);
	(void)close(shm->fd);
	free(shm->path);
	shm->path = NULL;
	shm->map = NULL;
	shm->fd = -1;
}

/* The thread id of a mutex's owner, or 0 if unknown. */
static long portguard_shm_mutex_owner(pthread_mutex_t *mutex)
{
#ifdef __GLIBC__
	/* glibc keeps the owner's thread id in the lock word of a robust
	   mutex (FUTEX_TID_MASK) */
	return (long)((unsigned int)mutex->__data.__lock & 0x3fffffffU);
#else
	(void)mutex;
	return 0;
#endif
}

/* Can every lock stripe of the attached table be used? Returns NULL, or
   why not: a damaged mutex, or one held by a process that does not exist
   (the file was copied or written back while a lock was held: nobody
   would ever release it). A stripe held by a live process is fine, and a
   lock abandoned by a process that died is repaired. */
static const char *
portguard_shm_check_stripes(struct portguard_shm *shm, char *buf,
			    size_t bufsize)
{
	pthread_mutex_t *mutex;
	unsigned int i;
	long owner;
	int ret;

	for (i = 0; i < shm->stripe_count; i++) {
		mutex = &shm->stripes[i].mutex;
		if (portguard_shm_mutex_damaged(mutex)) {
			(void)snprintf(buf, bufsize,
				       "lock stripe %u damaged", i);
			return buf;
		}
		ret = pthread_mutex_trylock(mutex);
		if (ret == EOWNERDEAD) {
			ret = pthread_mutex_consistent(mutex);
			if (ret == 0)
				portguard_shm_stripe_repair(shm, i);
			(void)pthread_mutex_unlock(mutex);
		} else if (ret == 0) {
			(void)pthread_mutex_unlock(mutex);
		} else if (ret == EBUSY) {
			owner = portguard_shm_mutex_owner(mutex);
			if (owner <= 0 || kill((pid_t)owner, 0) == 0 ||
			    errno != ESRCH)
				continue;
			(void)snprintf(buf, bufsize, "lock stripe %u held by "
				       "process %ld, which does not exist", i,
				       owner);
			return buf;
		}
		if (ret != 0) {
			(void)snprintf(buf, bufsize,
				       "lock stripe %u unusable: %s", i,
				       strerror(ret));
			return buf;
		}
	}
	return NULL;
}

/* Open and map an existing file. Returns 1 if it is valid and has the
   wanted size, 0 if it is missing (reason_buf[0] == '\0') or unusable
   (reason_buf says why), -1 with *error_r on a system error. */
static int
portguard_shm_open_existing(const char *path, uint64_t size,
			    struct portguard_shm *shm, char *reason_buf,
			    size_t reason_size, const char **error_r)
{
	char buf[160];
	const char *reason;
	struct stat st;
	uint8_t *map;
	uint64_t file_size;
	int fd;

	reason_buf[0] = '\0';
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = portguard_shm_error("open(%s) failed: %s", path,
					       strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = portguard_shm_error("fstat(%s) failed: %s", path,
					       strerror(errno));
		(void)close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = portguard_shm_error("%s: not a regular file", path);
		(void)close(fd);
		return -1;
	}
	file_size = (uint64_t)st.st_size;
	if (file_size < PORTGUARD_SHM_HEADER_SIZE ||
	    file_size > PORTGUARD_SHM_MAX_SIZE) {
		(void)snprintf(reason_buf, reason_size,
			       "bad file size %llu (truncated?)",
			       (unsigned long long)file_size);
		(void)close(fd);
		return 0;
	}
	map = mmap(NULL, (size_t)file_size, PROT_READ | PROT_WRITE,
		   MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		*error_r = portguard_shm_error("mmap(%s, %llu) failed: %s",
					       path,
					       (unsigned long long)file_size,
					       strerror(errno));
		(void)close(fd);
		return -1;
	}
	reason = portguard_shm_invalid(map, file_size, buf, sizeof(buf));
	if (reason == NULL && file_size != size) {
		(void)snprintf(buf, sizeof(buf),
			       "size changed (%llu -> %llu bytes)",
			       (unsigned long long)file_size,
			       (unsigned long long)size);
		reason = buf;
	}
	if (reason != NULL) {
		(void)snprintf(reason_buf, reason_size, "%s", reason);
		(void)munmap(map, (size_t)file_size);
		(void)close(fd);
		return 0;
	}
	portguard_shm_attach(shm, path, fd, map, file_size);
	if (shm->path == NULL) {
		*error_r = "out of memory";
		portguard_shm_detach(shm);
		return -1;
	}
	reason = portguard_shm_check_stripes(shm, buf, sizeof(buf));
	if (reason != NULL) {
		(void)snprintf(reason_buf, reason_size, "%s", reason);
		portguard_shm_detach(shm);
		return 0;
	}
	return 1;
}

static int portguard_shm_random(uint8_t *buf, size_t size,
				const char **error_r)
{
	size_t pos = 0;
	ssize_t ret;
	int fd;

	while (pos < size) {
		ret = getrandom(buf + pos, size - pos, 0);
		if (ret > 0)
			pos += (size_t)ret;
		else if (ret < 0 && errno != EINTR)
			break;
	}
	if (pos == size)
		return 0;

	/* no getrandom() (old kernel, seccomp): /dev/urandom */
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = portguard_shm_error("open(/dev/urandom) failed: %s",
					       strerror(errno));
		return -1;
	}
	for (pos = 0; pos < size; ) {
		ret = read(fd, buf + pos, size - pos);
		if (ret > 0)
			pos += (size_t)ret;
		else if (ret == 0 || errno != EINTR) {
			*error_r = portguard_shm_error(
				"read(/dev/urandom) failed: %s",
				ret == 0 ? "EOF" : strerror(errno));
			(void)close(fd);
			return -1;
		}
	}
	(void)close(fd);
	return 0;
}

/* Initialize a fresh zero-filled mapping of size bytes. */
static int portguard_shm_init(uint8_t *map, uint64_t size,
			      const char **error_r)
{
	struct portguard_shm_header *hdr = (void *)map;
	struct portguard_shm_stripe *stripes =
		(void *)(map + PORTGUARD_SHM_STRIPES_OFFSET);
	pthread_mutexattr_t attr;
	unsigned int i;
	int ret;

	memcpy(hdr->magic, portguard_shm_magic, sizeof(hdr->magic));
	hdr->version = PORTGUARD_SHM_VERSION;
	hdr->header_size = PORTGUARD_SHM_HEADER_SIZE;
	hdr->slot_size = PORTGUARD_SHM_SLOT_SIZE;
	hdr->ways = PORTGUARD_SHM_WAYS;
	hdr->entry_size = sizeof(struct portguard_rl_entry);
	hdr->mutex_size = sizeof(pthread_mutex_t);
	hdr->bucket_count = portguard_shm_buckets_for(size);
	hdr->stripe_count = portguard_shm_stripes_for(hdr->bucket_count);
	hdr->file_size = size;
	if (portguard_shm_random(hdr->secret, sizeof(hdr->secret),
				 error_r) < 0)
		return -1;
	hdr->checksum = portguard_shm_header_checksum(hdr);

	if ((ret = portguard_shm_mutexattr_init(&attr)) != 0) {
		*error_r = portguard_shm_error(
			"pthread_mutexattr setup failed: %s", strerror(ret));
		return -1;
	}
	for (i = 0; i < hdr->stripe_count; i++) {
		ret = pthread_mutex_init(&stripes[i].mutex, &attr);
		if (ret != 0) {
			*error_r = portguard_shm_error(
				"pthread_mutex_init() failed: %s",
				strerror(ret));
			(void)pthread_mutexattr_destroy(&attr);
			return -1;
		}
	}
	(void)pthread_mutexattr_destroy(&attr);
	return 0;
}

/* Write a fresh table under a temporary name and rename it over path.
   The caller holds the creation lock. */
static int portguard_shm_create(const char *path, uint64_t size,
				unsigned int mode, struct portguard_shm *shm,
				const char **error_r)
{
	static unsigned int counter = 0;
	size_t tmp_size = strlen(path) + 64;
	char *tmp_path = malloc(tmp_size);
	uint8_t *map = MAP_FAILED;
	int fd = -1, ret, tries;

	if (tmp_path == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	for (tries = 0; tries < 100; tries++) {
		(void)snprintf(tmp_path, tmp_size, "%s.tmp.%ld.%u", path,
			       (long)getpid(), counter++);
		fd = open(tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			  (mode_t)mode);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		*error_r = portguard_shm_error("open(%s) failed: %s", tmp_path,
					       strerror(errno));
		free(tmp_path);
		return -1;
	}
	/* the mode exactly, whatever the umask: every login process needs
	   to open the file */
	if (fchmod(fd, (mode_t)mode) < 0) {
		*error_r = portguard_shm_error("fchmod(%s) failed: %s",
					       tmp_path, strerror(errno));
		goto failed;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		*error_r = portguard_shm_error("ftruncate(%s, %llu) failed: %s",
					       tmp_path,
					       (unsigned long long)size,
					       strerror(errno));
		goto failed;
	}
	/* reserve the blocks now: running out of space later would be a
	   SIGBUS on some access */
	ret = posix_fallocate(fd, 0, (off_t)size);
	if (ret != 0 && ret != EOPNOTSUPP && ret != EINVAL) {
		*error_r = portguard_shm_error(
			"posix_fallocate(%s, %llu) failed: %s", tmp_path,
			(unsigned long long)size, strerror(ret));
		goto failed;
	}
	map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   fd, 0);
	if (map == MAP_FAILED) {
		*error_r = portguard_shm_error("mmap(%s, %llu) failed: %s",
					       tmp_path,
					       (unsigned long long)size,
					       strerror(errno));
		goto failed;
	}
	if (portguard_shm_init(map, size, error_r) < 0)
		goto failed;
	if (rename(tmp_path, path) < 0) {
		*error_r = portguard_shm_error("rename(%s, %s) failed: %s",
					       tmp_path, path,
					       strerror(errno));
		goto failed;
	}
	free(tmp_path);
	portguard_shm_attach(shm, path, fd, map, size);
	return 0;

failed:
	if (map != MAP_FAILED)
		(void)munmap(map, (size_t)size);
	(void)close(fd);
	(void)unlink(tmp_path);
	free(tmp_path);
	return -1;
}

int portguard_shm_open(const char *path, uint64_t size, unsigned int mode,
		       struct portguard_shm **shm_r, const char **warning_r,
		       const char **error_r)
{
	struct portguard_shm *shm;
	char reason[256], reason2[256], *lock_path;
	size_t lock_size;
	int ret, lock_fd;

	*shm_r = NULL;
	*warning_r = NULL;
	if (size < PORTGUARD_SHM_MIN_SIZE || size > PORTGUARD_SHM_MAX_SIZE) {
		*error_r = portguard_shm_error(
			"%s: size %llu out of range (%u..%llu)", path,
			(unsigned long long)size, PORTGUARD_SHM_MIN_SIZE,
			PORTGUARD_SHM_MAX_SIZE);
		return -1;
	}
	shm = calloc(1, sizeof(*shm));
	if (shm == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	shm->fd = -1;

	/* the usual case: a valid file of the right size */
	ret = portguard_shm_open_existing(path, size, shm, reason,
					  sizeof(reason), error_r);
	if (ret != 0)
		goto done;

	/* create or rebuild; one process at a time, the others wait and
	   then find the file another one made */
	lock_size = strlen(path) + 6;
	lock_path = malloc(lock_size);
	if (lock_path == NULL) {
		*error_r = "out of memory";
		ret = -1;
		goto done;
	}
	(void)snprintf(lock_path, lock_size, "%s.lock", path);
	lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, (mode_t)mode);
	if (lock_fd < 0) {
		*error_r = portguard_shm_error("open(%s) failed: %s",
					       lock_path, strerror(errno));
		free(lock_path);
		ret = -1;
		goto done;
	}
	while ((ret = flock(lock_fd, LOCK_EX)) < 0 && errno == EINTR) ;
	if (ret < 0) {
		*error_r = portguard_shm_error("flock(%s) failed: %s",
					       lock_path, strerror(errno));
	} else {
		ret = portguard_shm_open_existing(path, size, shm, reason2,
						  sizeof(reason2), error_r);
		if (ret == 0) {
			ret = portguard_shm_create(path, size, mode, shm,
						   error_r) < 0 ? -1 : 1;
			if (ret > 0 && reason2[0] != '\0') {
				(void)snprintf(portguard_shm_warnbuf,
					       sizeof(portguard_shm_warnbuf),
					       "%s: %s; file rebuilt", path,
					       reason2);
				*warning_r = portguard_shm_warnbuf;
			}
		}
	}
	(void)close(lock_fd); /* releases the lock */
	free(lock_path);

done:
	if (ret < 0 || shm->path == NULL) {
		if (ret >= 0)
			*error_r = "out of memory";
		if (shm->map != NULL)
			(void)munmap(shm->map, (size_t)shm->size);
		if (shm->fd >= 0)
			(void)close(shm->fd);
		free(shm->path);
		free(shm);
		*warning_r = NULL;
		return -1;
	}
	*shm_r = shm;
	return 0;
}

void portguard_shm_close(struct portguard_shm **_shm)
{
	struct portguard_shm *shm = *_shm;

	if (shm == NULL)
		return;
	*_shm = NULL;
	(void)munmap(shm->map, (size_t)shm->size);
	(void)close(shm->fd);
	free(shm->path);
	free(shm);
}

/* ---- access ---- */

/* Is the mapping still backed by the whole file? A file shrunk underneath
   would turn any access into SIGBUS. */
static int portguard_shm_check(struct portguard_shm *shm,
			       const char **error_r)
{
	struct stat st;

	if (fstat(shm->fd, &st) < 0) {
		*error_r = portguard_shm_error("fstat(%s) failed: %s",
					       shm->path, strerror(errno));
		return -1;
	}
	if ((uint64_t)st.st_size != shm->size) {
		*error_r = portguard_shm_error(
			"%s: file size changed underneath (%lld, expected "
			"%llu); table unusable until reopened", shm->path,
			(long long)st.st_size,
			(unsigned long long)shm->size);
		return -1;
	}
	if (memcmp(shm->hdr->magic, portguard_shm_magic,
		   sizeof(portguard_shm_magic)) != 0) {
		*error_r = portguard_shm_error(
			"%s: header overwritten underneath; table unusable "
			"until reopened", shm->path);
		return -1;
	}
	return 0;
}

static struct portguard_shm_slot *
portguard_shm_bucket_slots(struct portguard_shm *shm, unsigned int bucket)
{
	return &shm->slots[(size_t)bucket * PORTGUARD_SHM_WAYS];
}

/* Map the top 32 bits of a hash onto 0..bucket_count-1 without a
   division. */
static unsigned int portguard_shm_hash_bucket(const struct portguard_shm *shm,
					      uint64_t hash)
{
	return (unsigned int)(((hash >> 32) * shm->bucket_count) >> 32);
}

/* The key's two candidate buckets: two keyed hashes of the key, told
   apart by a leading tweak byte, so the second bucket is independent of
   the first (and an attacker knowing neither cannot aim at either). */
static void portguard_shm_place(const struct portguard_shm *shm,
				const struct portguard_rl_key *key,
				struct portguard_shm_place *place_r)
{
	uint8_t data[3 + sizeof(key->addr.bytes)];
	unsigned int i, tmp;

	data[1] = key->addr.family;
	data[2] = key->prefix;
	memcpy(data + 3, key->addr.bytes, sizeof(key->addr.bytes));
	for (i = 0; i < 2; i++) {
		data[0] = (uint8_t)(i + 1);
		place_r->bucket[i] = portguard_shm_hash_bucket(shm,
			portguard_siphash24(shm->secret, data, sizeof(data)));
		place_r->stripe[i] = place_r->bucket[i] % shm->stripe_count;
	}
	if (place_r->stripe[0] > place_r->stripe[1]) {
		tmp = place_r->stripe[0];
		place_r->stripe[0] = place_r->stripe[1];
		place_r->stripe[1] = tmp;
	}
}

static void portguard_shm_slot_clear(struct portguard_shm_slot *slot)
{
	slot->used = 0;
	memset(&slot->key, 0, sizeof(slot->key));
	memset(&slot->entry, 0, sizeof(slot->entry));
}

/* After a lock owner died: free slots it may have left half-written. */
static void portguard_shm_stripe_repair(struct portguard_shm *shm,
					unsigned int stripe)
{
	struct portguard_shm_slot *slots;
	unsigned int bucket, i;

	for (bucket = stripe; bucket < shm->bucket_count;
	     bucket += shm->stripe_count) {
		slots = portguard_shm_bucket_slots(shm, bucket);
		for (i = 0; i < PORTGUARD_SHM_WAYS; i++) {
			if (slots[i].used > 1 ||
			    (slots[i].used == 1 &&
			     slots[i].key.addr.family != 4 &&
			     slots[i].key.addr.family != 6 &&
			     slots[i].key.addr.family !=
			     PORTGUARD_RL_FAMILY_KNOWN))
				portguard_shm_slot_clear(&slots[i]);
		}
	}
}

static int portguard_shm_lock(struct portguard_shm *shm, unsigned int stripe,
			      const char **error_r)
{
	pthread_mutex_t *mutex = &shm->stripes[stripe].mutex;
	struct timespec deadline;
	int ret;

	if (portguard_shm_mutex_damaged(mutex)) {
		*error_r = portguard_shm_error(
			"%s: lock stripe %u damaged; table unusable until "
			"reopened", shm->path, stripe);
		return -1;
	}
	ret = pthread_mutex_trylock(mutex);
	if (ret == EBUSY) {
		/* bounded: see PORTGUARD_SHM_LOCK_TIMEOUT_MSECS */
		(void)clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += PORTGUARD_SHM_LOCK_TIMEOUT_MSECS / 1000;
		deadline.tv_nsec +=
			(PORTGUARD_SHM_LOCK_TIMEOUT_MSECS % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		ret = pthread_mutex_timedlock(mutex, &deadline);
	}
	if (ret == EOWNERDEAD) {
		/* its owner died holding it; the data it guards is ours */
		ret = pthread_mutex_consistent(mutex);
		if (ret == 0) {
			portguard_shm_stripe_repair(shm, stripe);
			return 0;
		}
		(void)pthread_mutex_unlock(mutex);
	}
	if (ret == ETIMEDOUT) {
		*error_r = portguard_shm_error(
			"%s: locking stripe %u timed out after %u ms (held by "
			"a stopped process, or left locked in a copied file?)",
			shm->path, stripe, PORTGUARD_SHM_LOCK_TIMEOUT_MSECS);
		return -1;
	}
	if (ret != 0) {
		*error_r = portguard_shm_error(
			"%s: locking stripe %u failed: %s", shm->path, stripe,
			strerror(ret));
		return -1;
	}
	return 0;
}

static void portguard_shm_unlock(struct portguard_shm *shm,
				 unsigned int stripe)
{
	(void)pthread_mutex_unlock(&shm->stripes[stripe].mutex);
}

/* Lock the stripes of both candidate buckets, always the lower stripe
   index first (every process locks in the same order: no deadlock), and a
   shared stripe once. */
static int portguard_shm_lock_place(struct portguard_shm *shm,
				    const struct portguard_shm_place *place,
				    const char **error_r)
{
	if (portguard_shm_lock(shm, place->stripe[0], error_r) < 0)
		return -1;
	if (place->stripe[1] != place->stripe[0] &&
	    portguard_shm_lock(shm, place->stripe[1], error_r) < 0) {
		portguard_shm_unlock(shm, place->stripe[0]);
		return -1;
	}
	return 0;
}

static void portguard_shm_unlock_place(struct portguard_shm *shm,
				       const struct portguard_shm_place *place)
{
	if (place->stripe[1] != place->stripe[0])
		portguard_shm_unlock(shm, place->stripe[1]);
	portguard_shm_unlock(shm, place->stripe[0]);
}

static struct portguard_shm_slot *
portguard_shm_find(struct portguard_shm_slot *slots,
		   const struct portguard_rl_key *key)
{
	unsigned int i;

	for (i = 0; i < PORTGUARD_SHM_WAYS; i++) {
		if (slots[i].used == 1 &&
		    portguard_rl_key_equals(&slots[i].key, key))
			return &slots[i];
	}
	return NULL;
}

/* The key's slot in either candidate bucket (the place is locked). */
static struct portguard_shm_slot *
portguard_shm_find_place(struct portguard_shm *shm,
			 const struct portguard_shm_place *place,
			 const struct portguard_rl_key *key)
{
	struct portguard_shm_slot *slot;

	slot = portguard_shm_find(portguard_shm_bucket_slots(shm,
							     place->bucket[0]),
				  key);
	if (slot == NULL && place->bucket[1] != place->bucket[0]) {
		slot = portguard_shm_find(
			portguard_shm_bucket_slots(shm, place->bucket[1]),
			key);
	}
	return slot;
}

static unsigned int
portguard_shm_bucket_used(const struct portguard_shm_slot *slots)
{
	unsigned int i, used = 0;

	for (i = 0; i < PORTGUARD_SHM_WAYS; i++)
		used += slots[i].used == 1 ? 1 : 0;
	return used;
}

/* A slot for a new key (the place is locked): the first free slot of the
   less loaded candidate bucket (the first bucket on a tie); if both are
   full, of all their slots the stalest one not banned at now, else the
   one whose ban ends first. */
static struct portguard_shm_slot *
portguard_shm_victim(struct portguard_shm *shm,
		     const struct portguard_shm_place *place, uint32_t now)
{
	struct portguard_shm_slot *stalest = NULL, *soonest = NULL;
	struct portguard_shm_slot *buckets[2], *slots;
	unsigned int used[2], b, i, nbuckets;

	buckets[0] = portguard_shm_bucket_slots(shm, place->bucket[0]);
	buckets[1] = portguard_shm_bucket_slots(shm, place->bucket[1]);
	nbuckets = place->bucket[1] != place->bucket[0] ? 2 : 1;
	used[0] = portguard_shm_bucket_used(buckets[0]);
	used[1] = nbuckets == 2 ? portguard_shm_bucket_used(buckets[1]) :
		PORTGUARD_SHM_WAYS;
	b = used[1] < used[0] ? 1 : 0;
	if (used[b] < PORTGUARD_SHM_WAYS) {
		for (i = 0; i < PORTGUARD_SHM_WAYS; i++) {
			if (buckets[b][i].used != 1)
				return &buckets[b][i];
		}
	}

	for (b = 0; b < nbuckets; b++) {
		slots = buckets[b];
		for (i = 0; i < PORTGUARD_SHM_WAYS; i++) {
			const struct portguard_rl_entry *entry =
				&slots[i].entry;

			if (!portguard_rl_is_banned(entry, now, NULL)) {
				if (stalest == NULL ||
				    entry->last_seen <
				    stalest->entry.last_seen)
					stalest = &slots[i];
			} else if (soonest == NULL ||
				   entry->ban_until <
				   soonest->entry.ban_until) {
				soonest = &slots[i];
			}
		}
	}
	return stalest != NULL ? stalest : soonest;
}

int portguard_shm_update(struct portguard_shm *shm,
			 const struct portguard_rl_key *key, uint32_t now,
			 bool create, portguard_shm_update_func_t *func,
			 void *context, const char **error_r)
{
	struct portguard_shm_place place;
	struct portguard_shm_slot *slot;
	struct portguard_rl_entry entry;
	bool created = false;
	int ret = 1;

	if (portguard_shm_check(shm, error_r) < 0)
		return -1;
	portguard_shm_place(shm, key, &place);
	if (portguard_shm_lock_place(shm, &place, error_r) < 0)
		return -1;

	slot = portguard_shm_find_place(shm, &place, key);
	if (slot != NULL)
		entry = slot->entry;
	else if (!create)
		ret = 0;
	else {
		memset(&entry, 0, sizeof(entry));
		created = true;
	}
	if (ret > 0) {
		/* func works on a copy: a process dying inside it leaves the
		   slot as it was */
		if (!func(&entry, created, context)) {
			if (slot != NULL)
				portguard_shm_slot_clear(slot);
		} else {
			entry.last_seen = now;
			if (slot == NULL) {
				/* in neither bucket (both are locked):
				   insert, never a second copy */
				slot = portguard_shm_victim(shm, &place, now);
				slot->used = 0;
				slot->key = *key;
			}
			slot->entry = entry;
			slot->used = 1;
		}
	}
	portguard_shm_unlock_place(shm, &place);
	return ret;
}

int portguard_shm_lookup(struct portguard_shm *shm,
			 const struct portguard_rl_key *key,
			 struct portguard_rl_entry *entry_r,
			 const char **error_r)
{
	struct portguard_shm_place place;
	struct portguard_shm_slot *slot;
	int ret = 0;

	if (portguard_shm_check(shm, error_r) < 0)
		return -1;
	portguard_shm_place(shm, key, &place);
	if (portguard_shm_lock_place(shm, &place, error_r) < 0)
		return -1;
	slot = portguard_shm_find_place(shm, &place, key);
	if (slot != NULL) {
		*entry_r = slot->entry;
		ret = 1;
	}
	portguard_shm_unlock_place(shm, &place);
	return ret;
}

int portguard_shm_iterate(struct portguard_shm *shm,
			  portguard_shm_iter_func_t *func, void *context,
			  const char **error_r)
{
	struct portguard_rl_key keys[PORTGUARD_SHM_WAYS];
	struct portguard_rl_entry entries[PORTGUARD_SHM_WAYS];
	struct portguard_shm_slot *slots;
	unsigned int stripe, bucket, i, n;

	for (stripe = 0; stripe < shm->stripe_count; stripe++) {
		for (bucket = stripe; bucket < shm->bucket_count;
		     bucket += shm->stripe_count) {
			if (portguard_shm_check(shm, error_r) < 0 ||
			    portguard_shm_lock(shm, stripe, error_r) < 0)
				return -1;
			slots = portguard_shm_bucket_slots(shm, bucket);
			for (i = n = 0; i < PORTGUARD_SHM_WAYS; i++) {
				if (slots[i].used != 1)
					continue;
				keys[n] = slots[i].key;
				entries[n++] = slots[i].entry;
			}
			portguard_shm_unlock(shm, stripe);

			/* unlocked: func may update the table */
			for (i = 0; i < n; i++) {
				if (!func(&keys[i], &entries[i], context))
					return 0;
			}
		}
	}
	return 0;
}

int portguard_shm_flush(struct portguard_shm *shm, const char **error_r)
{
	unsigned int stripe, bucket;

	for (stripe = 0; stripe < shm->stripe_count; stripe++) {
		if (portguard_shm_check(shm, error_r) < 0 ||
		    portguard_shm_lock(shm, stripe, error_r) < 0)
			return -1;
		for (bucket = stripe; bucket < shm->bucket_count;
		     bucket += shm->stripe_count) {
			memset(portguard_shm_bucket_slots(shm, bucket), 0,
			       PORTGUARD_SHM_BUCKET_SIZE);
		}
		portguard_shm_unlock(shm, stripe);
	}
	return 0;
}

unsigned int portguard_shm_capacity(const struct portguard_shm *shm)
{
	return shm->bucket_count * PORTGUARD_SHM_WAYS;
}

unsigned int portguard_shm_count(struct portguard_shm *shm)
{
	struct portguard_shm_slot *slots;
	unsigned int stripe, bucket, i, count = 0;
	const char *error;

	for (stripe = 0; stripe < shm->stripe_count; stripe++) {
		if (portguard_shm_check(shm, &error) < 0 ||
		    portguard_shm_lock(shm, stripe, &error) < 0)
			break;
		for (bucket = stripe; bucket < shm->bucket_count;
		     bucket += shm->stripe_count) {
			slots = portguard_shm_bucket_slots(shm, bucket);
			for (i = 0; i < PORTGUARD_SHM_WAYS; i++)
				count += slots[i].used == 1 ? 1 : 0;
		}
		portguard_shm_unlock(shm, stripe);
	}
	return count;
}

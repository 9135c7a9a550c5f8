/* A cache of portguard's settings shared by the login processes of one
   service generation, so that a login process (one per connection with
   service_count = 1) need not ask the config service again.

   Dovecot 2.3 sends a config request per read; the login process already
   made its own before the plugin was loaded, and the plugin's second one
   costs about 0.2 ms of CPU (config process + login) and a round trip to
   the single config process per connection.

   Key: the status pipe the master gives every process of a service
   (MASTER_STATUS_FD). The master creates a new pipe for each service
   whenever it (re)creates its services: at start and at every reload,
   which is also the only time the config service can hand out other
   settings. So all processes that share the pipe see the same settings,
   and a reload invalidates the cache without any timestamp. The file
   lives in base_dir, is written by root (plugin init runs as root) and is
   only trusted if owned by root and not writable by others. */

#include "login-common.h"
#include "portguard-compat.h"
#include "portguard-config-cache.h"

#if DOVECOT_PREREQ(2, 4, 0)
/* 2.4 gives every process its whole configuration at start: no config
   request to save. */
int portguard_config_cache_read(
	pool_t pool ATTR_UNUSED,
	const struct portguard_settings **set_r ATTR_UNUSED,
	bool *uses_filters_r ATTR_UNUSED)
{
	return -1;
}

void portguard_config_cache_write(
	const struct portguard_settings *set ATTR_UNUSED,
	bool uses_filters ATTR_UNUSED)
{
}
#else
#include "str.h"
#include "strescape.h"
#include "read-full.h"
#include "write-full.h"
#include "master-interface.h"
#include "master-service.h"
#include "master-service-settings.h"
#include "settings-parser.h"
#include "portguard-settings.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#define PORTGUARD_CONFIG_CACHE_NAME "portguard-settings.cache"
#define PORTGUARD_CONFIG_CACHE_MAX_SIZE 65536

static const char *portguard_config_cache_path(void)
{
	return t_strdup_printf("%s/"PORTGUARD_CONFIG_CACHE_NAME,
		master_service_settings_get(master_service)->base_dir);
}

/* The first line of the file: format, service, master, status pipe. */
static bool portguard_config_cache_key(const char **key_r)
{
	struct stat st;

	if (fstat(MASTER_STATUS_FD, &st) < 0 || !S_ISFIFO(st.st_mode))
		return FALSE;
	*key_r = t_strdup_printf(
		"portguard-settings-cache 1\t%s\t%ld\t%llu\t%llu",
		login_binary->process_name, (long)getppid(),
		(unsigned long long)st.st_dev,
		(unsigned long long)st.st_ino);
	return TRUE;
}

static bool
portguard_config_cache_set(const struct setting_define *def, void *set,
			   const char *value, pool_t pool)
{
	void *ptr = PTR_OFFSET(set, def->offset);
	unsigned int uint_value;
	uoff_t size_value;

	switch (def->type) {
	case SET_STR:
		*(const char **)ptr = p_strdup(pool, value);
		return TRUE;
	case SET_BOOL:
		if (strcmp(value, "1") != 0 && strcmp(value, "0") != 0)
			return FALSE;
		*(bool *)ptr = value[0] == '1';
		return TRUE;
	case SET_UINT:
	case SET_TIME:
	case SET_TIME_MSECS:
		if (str_to_uint(value, &uint_value) < 0)
			return FALSE;
		*(unsigned int *)ptr = uint_value;
		return TRUE;
	case SET_SIZE:
		if (str_to_uoff(value, &size_value) < 0)
			return FALSE;
		*(uoff_t *)ptr = size_value;
		return TRUE;
	default:
		return FALSE;
	}
}

int portguard_config_cache_read(pool_t pool,
				const struct portguard_settings **set_r,
				bool *uses_filters_r)
{
	const struct setting_parser_info *info = &portguard_setting_parser_info;
	const struct setting_define *def;
	const char *key, *const *lines, *const *args, *value;
	unsigned int i, count, found = 0, ndefs = 0;
	struct stat st;
	char *data;
	void *set;
	int fd, ret;

	if (!portguard_config_cache_key(&key))
		return -1;
	fd = open(portguard_config_cache_path(), O_RDONLY | O_NOFOLLOW |
		  O_CLOEXEC);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 0022) != 0 || st.st_size <= 0 ||
	    st.st_size > PORTGUARD_CONFIG_CACHE_MAX_SIZE) {
		i_close_fd(&fd);
		return -1;
	}
	data = t_malloc0(st.st_size + 1);
	ret = read_full(fd, data, st.st_size);
	i_close_fd(&fd);
	if (ret <= 0)
		return -1;

	lines = t_strsplit(data, "\n");
	if (lines[0] == NULL || strcmp(lines[0], key) != 0)
		return -1;
	set = p_malloc(pool, info->struct_size);
	for (def = info->defines; def->key != NULL; def++)
		ndefs++;
	count = str_array_length(lines);
	for (i = 1; i < count; i++) {
		if (lines[i][0] == '\0')
			continue;
		args = t_strsplit_tabescaped(lines[i]);
		if (str_array_length(args) != 2)
			return -1;
		value = args[1];
		if (strcmp(args[0], "!uses_filters") == 0) {
			*uses_filters_r = strcmp(value, "1") == 0;
			found++;
			continue;
		}
		for (def = info->defines; def->key != NULL; def++) {
			if (strcmp(def->key, args[0]) == 0)
				break;
		}
		if (def->key == NULL ||
		    !portguard_config_cache_set(def, set, value, pool))
			return -1;
		found++;
	}
	/* every setting and the filter flag, or nothing */
	if (found != ndefs + 1)
		return -1;
	*set_r = set;
	return 0;
}

void portguard_config_cache_write(const struct portguard_settings *set,
				  bool uses_filters)
{
	const struct setting_parser_info *info = &portguard_setting_parser_info;
	const struct setting_define *def;
	const char *key, *path, *tmp_path;
	const void *ptr;
	string_t *str;
	int fd;

	if (geteuid() != 0 || !portguard_config_cache_key(&key))
		return;
	str = t_str_new(1024);
	str_printfa(str, "%s\n!uses_filters\t%d\n", key, uses_filters ? 1 : 0);
	for (def = info->defines; def->key != NULL; def++) {
		ptr = CONST_PTR_OFFSET(set, def->offset);
		str_append_tabescaped(str, def->key);
		str_append_c(str, '\t');
		switch (def->type) {
		case SET_STR:
			str_append_tabescaped(str, *(const char *const *)ptr);
			break;
		case SET_BOOL:
			str_append_c(str, *(const bool *)ptr ? '1' : '0');
			break;
		case SET_UINT:
		case SET_TIME:
		case SET_TIME_MSECS:
			str_printfa(str, "%u", *(const unsigned int *)ptr);
			break;
		case SET_SIZE:
			str_printfa(str, "%"PRIuUOFF_T, *(const uoff_t *)ptr);
			break;
		default:
			/* a type this cache does not know: no cache */
			return;
		}
		str_append_c(str, '\n');
	}

	path = portguard_config_cache_path();
	tmp_path = t_strdup_printf("%s.%ld", path, (long)getpid());
	fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		  O_CLOEXEC, 0600);
	if (fd == -1)
		return;
	if (write_full(fd, str_data(str), str_len(str)) < 0) {
		i_close_fd(&fd);
		i_unlink_if_exists(tmp_path);
		return;
	}
	if (close(fd) < 0 || rename(tmp_path, path) < 0)
		i_unlink_if_exists(tmp_path);
}
#endif

#ifndef TEST_COMMON_H
#define TEST_COMMON_H

/* Helpers shared by the table-driven cmocka tests: each check names the
   table row (label) that failed. Include after <cmocka.h>. */

#include <string.h>

#define N_ELEMENTS(arr) (sizeof(arr) / sizeof((arr)[0]))

#define CHECK_INT(label, actual, expected) do { \
	long long a_ = (actual), e_ = (expected); \
	if (a_ != e_) \
		fail_msg("%s: %s = %lld, expected %lld", \
			 (label), #actual, a_, e_); \
	} while (0)

#define CHECK_STR(label, actual, expected) do { \
	const char *a_ = (actual), *e_ = (expected); \
	if (a_ == NULL || strcmp(a_, e_) != 0) \
		fail_msg("%s: %s = '%s', expected '%s'", (label), #actual, \
			 a_ == NULL ? "(null)" : a_, e_); \
	} while (0)

#endif

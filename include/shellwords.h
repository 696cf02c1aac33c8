/*
 * shellwords.h - splits a command line into words the way a POSIX shell
 * splits words, without ever running a shell: blanks separate words;
 * 'single quotes' keep everything literally; "double quotes" keep
 * everything but \" \\ \$ \` which lose their backslash; a backslash
 * outside quotes keeps the next character literally.  Nothing is expanded:
 * $VAR, ~, * and $(...) stay as they are.  Pure; thread-safe.
 */
#ifndef JOBD_SHELLWORDS_H
#define JOBD_SHELLWORDS_H

#include <stddef.h>

/*
 * Splits s.  On success returns 0 and a new NULL-terminated vector in
 * *argv (free it with shellwords_free) with *argc words (maybe 0).  On an
 * unterminated quote or trailing backslash returns JOBD_EINVAL with the
 * reason in err; JOBD_ENOMEM when out of memory.
 */
int shellwords_split(const char *s, char ***argv, int *argc, char *err,
                     size_t errlen);

void shellwords_free(char **argv);

#endif

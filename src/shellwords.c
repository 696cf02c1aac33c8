/*
 * shellwords.c - POSIX-shell-like word splitting with no expansion.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "shellwords.h"

void
shellwords_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

static int
push(char ***argv, int *argc, size_t *cap, char *word)
{
	if ((size_t)*argc + 2 > *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		char **v = realloc(*argv, ncap * sizeof(*v));
		if (v == NULL)
			return JOBD_ENOMEM;
		*argv = v;
		*cap = ncap;
	}
	(*argv)[(*argc)++] = word;
	(*argv)[*argc] = NULL;
	return 0;
}

/* Ends the word in progress (word[0..w)) and appends a copy of it. */
static int
push_word(char ***argv, int *argc, size_t *cap, char *word, size_t w)
{
	char *dup;

	word[w] = '\0';
	dup = strdup(word);
	if (dup == NULL || push(argv, argc, cap, dup) != 0) {
		free(dup);
		return JOBD_ENOMEM;
	}
	return 0;
}

int
shellwords_split(const char *s, char ***out, int *outc, char *err,
                 size_t errlen)
{
	size_t len = strlen(s);
	char *word = malloc(len + 1); /* a word is never longer than s */
	char **argv = NULL;
	size_t cap = 0, w = 0;
	int argc = 0, rc = 0;
	bool in_word = false;
	const char *p = s;

	if (word == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	argv = calloc(1, sizeof(*argv));
	if (argv == NULL) {
		free(word);
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	}
	cap = 1;
	while (*p) {
		char c = *p;
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			if (in_word) {
				rc = push_word(&argv, &argc, &cap, word, w);
				if (rc != 0)
					goto fail;
				w = 0;
				in_word = false;
			}
			p++;
			continue;
		}
		if (c == '\\' && p[1] == '\n') {
			p += 2; /* a line continuation is no character at all */
			continue;
		}
		in_word = true;
		if (c == '\'') {
			const char *end = strchr(p + 1, '\'');
			if (end == NULL) {
				rc = jobd_seterr(err, errlen, JOBD_EINVAL,
				                 "unterminated single quote");
				goto fail;
			}
			memcpy(word + w, p + 1, (size_t)(end - p - 1));
			w += (size_t)(end - p - 1);
			p = end + 1;
		} else if (c == '"') {
			p++;
			for (;;) {
				if (*p == '\0') {
					rc = jobd_seterr(err, errlen, JOBD_EINVAL,
					                 "unterminated double quote");
					goto fail;
				}
				if (*p == '"') {
					p++;
					break;
				}
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\' ||
				                   p[1] == '$' || p[1] == '`')) {
					word[w++] = p[1];
					p += 2;
					continue;
				}
				if (*p == '\\' && p[1] == '\n') {
					p += 2; /* line continuation */
					continue;
				}
				word[w++] = *p++;
			}
		} else if (c == '\\') {
			if (p[1] == '\0') {
				rc = jobd_seterr(err, errlen, JOBD_EINVAL,
				                 "trailing backslash");
				goto fail;
			}
			if (p[1] != '\n')
				word[w++] = p[1];
			p += 2;
		} else {
			word[w++] = c;
			p++;
		}
	}
	if (in_word) {
		rc = push_word(&argv, &argc, &cap, word, w);
		if (rc != 0)
			goto fail;
	}
	free(word);
	*out = argv;
	*outc = argc;
	return 0;
fail:
	if (rc == JOBD_ENOMEM)
		jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	free(word);
	shellwords_free(argv);
	return rc;
}

/*
 * fuzz_config.c - libFuzzer harness for the INI configuration loader
 * (config_load / config_load_string, then config_free): the table-driven
 * value parsers, the line-counting reader fed to libinih, duplicate and
 * section checks, and the handler validation (which runs shellwords_split).
 *
 * The input is the configuration file.  It is loaded twice: from a file,
 * as the daemon does (a memfd opened by its /proc path, so embedded NULs
 * reach the getline reader), and from a NUL-terminated copy with
 * config_load_string.  For text without NUL both must give the same
 * result and the same messages.  Error buffers are heap-allocated with no
 * slack so that ASan sees any write past errlen.  Besides the sanitizers,
 * the harness checks config.h's contract: failure sets err and no config;
 * success gives handlers that are builtin xor command, with values within
 * the table's bounds, each findable by its name and each declared by a
 * [handler.NAME] header of exactly that name.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "log.h"

#define ERRLEN 1024

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_config: %s: ", #cond);       \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			abort();                                           \
		}                                                          \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char memfd_path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(0);
	memfd = memfd_create("fuzz.conf", MFD_CLOEXEC);
	if (memfd < 0) {
		perror("fuzz_config: memfd_create");
		abort();
	}
	snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	return 0;
}

/* True when text[0..len) holds the header "[handler.NAME]". */
static bool
has_header(const uint8_t *text, size_t len, const char *name)
{
	char header[128];
	int n = snprintf(header, sizeof(header), "[handler.%s]", name);

	return n > 0 && (size_t)n < sizeof(header) &&
	       memmem(text, len, header, (size_t)n) != NULL;
}

static void
check_config(const struct config *cfg, const uint8_t *text, size_t len)
{
	CHECK(cfg->server.listen != NULL, "no listen");
	CHECK(cfg->store.path != NULL, "no store path");
	CHECK(cfg->server.max_body_bytes >= 1024 &&
	      cfg->server.max_body_bytes <= 1LL << 30, "max_body %lld",
	      (long long)cfg->server.max_body_bytes);
	CHECK(cfg->workers.threads >= 1 && cfg->workers.threads <= 1024,
	      "workers.threads %lld", (long long)cfg->workers.threads);
	CHECK(cfg->store.durability == DURABILITY_FULL ||
	      cfg->store.durability == DURABILITY_NORMAL, "durability");
	CHECK((cfg->server.tls_cert == NULL) == (cfg->server.tls_key == NULL),
	      "tls_cert without tls_key");
	for (size_t i = 0; i < cfg->nhandlers; i++) {
		const struct handler_conf *h = &cfg->handlers[i];
		CHECK(h->name != NULL && h->name[0] != '\0', "handler %zu", i);
		/* A handler exists only because its section was written. */
		CHECK(has_header(text, len, h->name),
		      "handler \"%s\" has no [handler.%s] header", h->name,
		      h->name);
		CHECK(config_handler(cfg, h->name) == h, "handler \"%s\"",
		      h->name);
		CHECK((h->builtin == BUILTIN_NONE) != (h->command == NULL),
		      "handler \"%s\": builtin %lld, command %s", h->name,
		      (long long)h->builtin, h->command ? h->command : "NULL");
		CHECK(h->max_attempts >= 1 && h->max_attempts <= 100,
		      "handler \"%s\": max_attempts %lld", h->name,
		      (long long)h->max_attempts);
		CHECK(h->timeout_ms >= 1, "handler \"%s\": timeout_ms %lld",
		      h->name, (long long)h->timeout_ms);
		CHECK(h->backoff_base_ms <= h->backoff_max_ms,
		      "handler \"%s\": backoff", h->name);
	}
}

/* Loads with one loader, checks the outcome; returns rc, err filled. */
static int
load_checked(const uint8_t *data, size_t size, const char *file_text,
             char *err)
{
	struct config *cfg = NULL;
	int rc;

	err[0] = '\0';
	if (file_text != NULL)
		rc = config_load_string(memfd_path, file_text, &cfg, err, ERRLEN);
	else
		rc = config_load(memfd_path, &cfg, err, ERRLEN);
	CHECK(rc == 0 || rc == JOBD_EINVAL, "unexpected code %d (%s)", rc,
	      file_text != NULL ? "string" : "file");
	CHECK(memchr(err, '\0', ERRLEN) != NULL, "err not terminated");
	if (rc != 0) {
		CHECK(cfg == NULL, "failure returned a config");
		CHECK(err[0] != '\0', "failure without a reason");
		return rc;
	}
	CHECK(cfg != NULL, "success without a config");
	check_config(cfg, data, size);
	config_free(cfg);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char *err_file = malloc(ERRLEN), *err_str = malloc(ERRLEN);
	int rc_file, rc_str;

	if (text == NULL || err_file == NULL || err_str == NULL)
		goto out;
	memcpy(text, data, size);
	text[size] = '\0';

	if (ftruncate(memfd, 0) != 0 ||
	    pwrite(memfd, data, size, 0) != (ssize_t)size) {
		perror("fuzz_config: memfd");
		abort();
	}
	rc_file = load_checked(data, size, NULL, err_file);
	rc_str = load_checked(data, size, text, err_str);
	if (memchr(data, '\0', size) == NULL) {
		CHECK(rc_file == rc_str, "file %d, string %d", rc_file, rc_str);
		CHECK(strcmp(err_file, err_str) == 0,
		      "file says \"%s\", string says \"%s\"", err_file,
		      err_str);
	}
out:
	free(err_str);
	free(err_file);
	free(text);
	return 0;
}

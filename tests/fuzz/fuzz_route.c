/*
 * fuzz_route.c - libFuzzer harness for the route/URL parser (api_route),
 * which turns a request path from libmicrohttpd into a route and a job id.
 *
 * The input is the path (a NUL-terminated copy; libmicrohttpd hands
 * over C strings).  Besides the sanitizers, the harness checks api.h's
 * contract: a job route comes with a valid, lower-case UUID that really
 * is the path's second segment, any other route with an empty id, and
 * every route has an Allow value.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "log.h"
#include "uuid.h"

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_route: %s: ", #cond);        \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			abort();                                           \
		}                                                          \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 1);
	char id[37];
	int route;

	if (path == NULL)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';

	memset(id, 'x', sizeof(id)); /* api_route must set it either way */
	route = api_route(path, id);
	CHECK(route >= ROUTE_NONE && route < ROUTE_COUNT, "route %d", route);
	CHECK(api_route_allow(route) != NULL, "no Allow for route %d", route);
	if (route == ROUTE_JOB || route == ROUTE_JOB_RETRY) {
		CHECK(strlen(id) == 36 && uuid_is_valid(id), "id \"%.37s\"", id);
		for (int i = 0; i < 36; i++)
			CHECK(!isupper((unsigned char)id[i]), "id \"%s\"", id);
		CHECK(strncmp(path, "/jobs/", 6) == 0 &&
		      strncasecmp(path + 6, id, 36) == 0,
		      "id \"%s\" is not in \"%s\"", id, path);
		CHECK(strcmp(path + 42, route == ROUTE_JOB ? "" : "/retry") == 0,
		      "route %d for \"%s\"", route, path);
	} else {
		CHECK(id[0] == '\0', "route %d left id \"%.37s\"", route, id);
	}
	free(path);
	return 0;
}

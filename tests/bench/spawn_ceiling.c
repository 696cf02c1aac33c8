/*
 * spawn_ceiling.c - the spawn ceiling for `make bench`: how many times per
 * second this machine can posix_spawn /bin/true and wait for it, with P
 * threads spawning in parallel (P = cores, like jobd's workers).  This is
 * the "plain fork+exec+wait loop" that jobd's exec drain is compared with.
 *
 * usage: spawn_ceiling N P      prints "spawns=N seconds=S rate=R"
 * Built by tests/bench/run.sh with `cc -O2 -pthread`; not part of jobd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static const char *const prog = "/bin/true";
static long per_thread;

static void *
spawner(void *arg)
{
	long *failed = arg;
	char *argv[] = {(char *)prog, NULL};

	for (long i = 0; i < per_thread; i++) {
		pid_t pid;
		int status, rc;

		rc = posix_spawn(&pid, prog, NULL, NULL, argv, environ);
		if (rc != 0) {
			fprintf(stderr, "spawn_ceiling: posix_spawn %s: %s\n",
			        prog, strerror(rc));
			(*failed)++;
			return NULL;
		}
		while (waitpid(pid, &status, 0) < 0) {
			if (errno != EINTR) {
				perror("spawn_ceiling: waitpid");
				(*failed)++;
				return NULL;
			}
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			(*failed)++;
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	long n, p, failed_total = 0;
	struct timespec t0, t1;

	if (argc != 3 || (n = atol(argv[1])) <= 0 || (p = atol(argv[2])) <= 0 ||
	    p > 256) {
		fprintf(stderr, "usage: spawn_ceiling N P\n");
		return 2;
	}
	per_thread = n / p;
	n = per_thread * p;

	pthread_t tid[256];
	long failed[256] = {0};

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < p; i++) {
		if (pthread_create(&tid[i], NULL, spawner, &failed[i]) != 0) {
			fprintf(stderr, "spawn_ceiling: pthread_create failed\n");
			return 1;
		}
	}
	for (long i = 0; i < p; i++) {
		pthread_join(tid[i], NULL);
		failed_total += failed[i];
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	double s = (double)(t1.tv_sec - t0.tv_sec) +
	           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("spawns=%ld seconds=%.3f rate=%.0f failed=%ld\n", n, s,
	       (double)n / s, failed_total);
	return failed_total == 0 ? 0 : 1;
}

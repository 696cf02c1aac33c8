/*
 * probe.c - what one libpq connection (jobd's writer) gets out of the
 * proposed schema (schema_proto.sql), for docs/postgres-store.md.  Built
 * and run by tests/pg/bench.sh; not part of jobd.
 *
 *   probe URI SECONDS
 *
 * Every transaction is one libpq pipeline (BEGIN ... COMMIT, one sync), as
 * store_pg.c's writer will send it, and is durable (synchronous_commit
 * on).  Intake of a batch of B jobs three ways:
 *   values    one multi-row INSERT ... VALUES ($1..), 4 parameters a row
 *   unnest    one INSERT ... SELECT FROM unnest($1::uuid[], ...), 4 arrays
 *   pipeline  B one-row INSERTs (one prepared statement)
 * Drain of a queue, each transaction completing the previous batch
 * (fenced by its claim token) and claiming the next:
 *   array     one UPDATE ... WHERE id = ANY($1::uuid[]) AND claim = $2
 *   per-row   B UPDATE ... WHERE id = $1 AND claim = $2, pipelined
 *   per-row, one round trip each: what today's store interface (one
 *             store_complete() call, one answer, per job) costs unchanged
 * Prints one line per run: jobs/s and the median transaction time.
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static PGconn *conn;
static double run_secs;
static uint64_t seq;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A UUIDv7-shaped id: 48 bits of ms, then a per-process sequence. */
static void
uuid7(char out[37])
{
	uint64_t ms = (uint64_t)(wall_us() / 1000), s = ++seq;

	snprintf(out, 37, "%08x-%04x-7%03x-8%03x-%012llx",
	         (unsigned)(ms >> 16), (unsigned)(ms & 0xffff),
	         (unsigned)((s >> 48) & 0xfff), (unsigned)(getpid() & 0xfff),
	         (unsigned long long)(s & 0xffffffffffffULL));
}

static void
die(const char *what)
{
	fprintf(stderr, "probe: %s: %s\n", what, PQerrorMessage(conn));
	exit(1);
}

static void
exec_ok(const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType s = PQresultStatus(r);

	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		die(sql);
	PQclear(r);
}

static void
prepare(const char *name, const char *sql)
{
	PGresult *r = PQprepare(conn, name, sql, 0, NULL);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die(name);
	PQclear(r);
}

static void
send_prepared(const char *name, int n, const char *const *v)
{
	if (!PQsendQueryPrepared(conn, name, n, v, NULL, NULL, 0))
		die(name);
}

static void
send_sql(const char *sql)
{
	if (!PQsendQueryParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0))
		die(sql);
}

/*
 * Reads the results of a pipeline up to its sync.  ids (may be NULL)
 * receives the first column of the last result that had rows (the claim).
 */
static int
drain_results(char ***ids, int *nids)
{
	int rows = 0;

	for (;;) {
		PGresult *r = PQgetResult(conn);
		ExecStatusType s;

		if (r == NULL)
			continue; /* end of one query's results */
		s = PQresultStatus(r);
		if (s == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return rows;
		}
		if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
			die(PQresultErrorMessage(r));
		if (s == PGRES_TUPLES_OK && ids != NULL && PQntuples(r) > 0 &&
		    PQnfields(r) == 1) {
			for (int i = 0; i < *nids; i++)
				free((*ids)[i]);
			*nids = PQntuples(r);
			*ids = realloc(*ids, sizeof(char *) * (size_t)*nids);
			for (int i = 0; i < *nids; i++)
				(*ids)[i] = strdup(PQgetvalue(r, i, 0));
		}
		rows += PQntuples(r);
		PQclear(r);
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
report(const char *what, int batch, long jobs, double secs, double *lat,
       long nlat)
{
	qsort(lat, (size_t)nlat, sizeof(double), cmp_double);
	printf("%-58s B=%-4d %8.0f jobs/s  p50 %.2f ms\n", what, batch,
	       jobs / secs, nlat ? lat[nlat / 2] * 1000 : 0.0);
	fflush(stdout);
}

static const char payload[] = "{\"to\":\"someone@example.com\",\"subject\":"
	"\"hello there\",\"body\":\"a payload of about two hundred bytes, like "
	"the jobs of the benchmarks, with some text\",\"n\":12345}";

/* ---- intake ---- */

enum { M_VALUES, M_UNNEST, M_PIPELINE };

static void
intake(int mode, int batch)
{
	static const char *const names[] = {
		"intake: one multi-row INSERT ... VALUES",
		"intake: INSERT ... SELECT FROM unnest(arrays)",
		"intake: one-row INSERTs in one pipeline"};
	char (*ids)[37] = malloc(sizeof(*ids) * (size_t)batch);
	const char **v = malloc(sizeof(char *) * (size_t)batch * 4);
	char cnt[32], ts[32], sql[64];
	size_t cap = (size_t)batch * 300 + 256;
	char *idarr = malloc(cap), *plarr = malloc(cap * 2), *big;
	double *lat = malloc(sizeof(double) * 200000), t0, t;
	long jobs = 0, nlat = 0;

	snprintf(cnt, sizeof(cnt), "%d", batch);
	/* The statements of this mode and batch size. */
	if (mode == M_VALUES) {
		big = malloc((size_t)batch * 64 + 256);
		strcpy(big, "INSERT INTO jobd.jobs (id, type, status, priority,"
		       " max_attempts, timeout_ms, created_at, run_at, payload)"
		       " VALUES ");
		for (int i = 0; i < batch; i++)
			sprintf(big + strlen(big), "%s($%d, $%d, 0, 0, 3, 30000,"
			        " $%d, $%d, $%d)", i ? ", " : "", 4 * i + 1,
			        4 * i + 2, 4 * i + 3, 4 * i + 3, 4 * i + 4);
		snprintf(sql, sizeof(sql), "values%d", batch);
		prepare(sql, big);
		free(big);
	} else if (mode == M_UNNEST) {
		snprintf(sql, sizeof(sql), "unnest");
		prepare(sql, "INSERT INTO jobd.jobs (id, type, status, priority,"
		        " max_attempts, timeout_ms, created_at, run_at, payload)"
		        " SELECT i, t, 0, 0, 3, 30000, $3, $3, p FROM"
		        " unnest($1::uuid[], $2::text[], $4::text[]) AS u(i, t, p)");
	} else {
		snprintf(sql, sizeof(sql), "one");
		prepare(sql, "INSERT INTO jobd.jobs (id, type, status, priority,"
		        " max_attempts, timeout_ms, created_at, run_at, payload)"
		        " VALUES ($1, $2, 0, 0, 3, 30000, $3, $3, $4)");
	}
	prepare("cnt", "UPDATE jobd.counts SET n = n + $1 WHERE status = 0");

	t0 = now_s();
	while ((t = now_s()) - t0 < run_secs && nlat < 200000) {
		const char *cv[1] = {cnt};

		snprintf(ts, sizeof(ts), "%lld", (long long)wall_us());
		for (int i = 0; i < batch; i++)
			uuid7(ids[i]);
		if (PQenterPipelineMode(conn) != 1)
			die("pipeline");
		send_sql("BEGIN");
		if (mode == M_VALUES) {
			for (int i = 0; i < batch; i++) {
				v[4 * i] = ids[i];
				v[4 * i + 1] = "noop";
				v[4 * i + 2] = ts;
				v[4 * i + 3] = payload;
			}
			send_prepared(sql, 4 * batch, v);
		} else if (mode == M_UNNEST) {
			/* Text-format arrays: {id,...} and {"payload",...}
			 * ("types" the same word each time). */
			char *p = idarr, *q = plarr, *types;
			size_t tl = (size_t)batch * 6 + 3;

			*p++ = '{';
			*q++ = '{';
			for (int i = 0; i < batch; i++) {
				p += sprintf(p, "%s%s", i ? "," : "", ids[i]);
				*q++ = i ? ',' : '"';
				if (i)
					*q++ = '"';
				for (const char *c = payload; *c; c++) {
					if (*c == '"' || *c == '\\')
						*q++ = '\\';
					*q++ = *c;
				}
				*q++ = '"';
			}
			strcpy(p, "}");
			strcpy(q, "}");
			types = malloc(tl);
			p = types;
			*p++ = '{';
			for (int i = 0; i < batch; i++)
				p += sprintf(p, "%snoop", i ? "," : "");
			strcpy(p, "}");
			v[0] = idarr;
			v[1] = types;
			v[2] = ts;
			v[3] = plarr;
			send_prepared(sql, 4, v);
			free(types);
		} else {
			for (int i = 0; i < batch; i++) {
				const char *rv[4] = {ids[i], "noop", ts, payload};

				send_prepared(sql, 4, rv);
			}
		}
		send_prepared("cnt", 1, cv);
		send_sql("COMMIT");
		if (PQpipelineSync(conn) != 1)
			die("sync");
		drain_results(NULL, NULL);
		if (PQexitPipelineMode(conn) != 1)
			die("exit pipeline");
		lat[nlat++] = now_s() - t;
		jobs += batch;
	}
	report(names[mode], batch, jobs, now_s() - t0, lat, nlat);
	exec_ok("DEALLOCATE ALL");
	free(ids);
	free(v);
	free(idarr);
	free(plarr);
	free(lat);
}

/* ---- drain ---- */

enum { D_ARRAY, D_PERROW, D_SYNC };

static void
fill(long n)
{
	char sql[1024];

	exec_ok("TRUNCATE jobd.jobs");
	snprintf(sql, sizeof(sql), "INSERT INTO jobd.jobs (id, type, status,"
	         " priority, max_attempts, timeout_ms, created_at, run_at,"
	         " payload) SELECT jobd.uuid7(), (ARRAY['noop','echo','mail'])"
	         "[1 + i %% 3], 0, (i %% 3) - 1, 3, 30000, i, i, '%s' FROM"
	         " generate_series(1, %ld) i", payload, n);
	exec_ok(sql);
	exec_ok("UPDATE jobd.counts SET n = 0");
	exec_ok("VACUUM ANALYZE jobd.jobs");
	exec_ok("CHECKPOINT");
}

static void
drain(int mode, int batch, long queued)
{
	static const char *const names[] = {
		"drain: complete(array) + claim, one txn",
		"drain: complete(per row, pipelined) + claim, one txn",
		"drain: complete(per row, a round trip each) + claim"};
	char **ids = NULL, tok[64] = "none", prev[64] = "none", lim[16];
	char *arr = malloc((size_t)batch * 40 + 8);
	double *lat = malloc(sizeof(double) * 200000), t0, t;
	long jobs = 0, nlat = 0, k = 0;
	int nids = 0;

	fill(queued);
	snprintf(lim, sizeof(lim), "%d", batch);
	prepare("claim", "UPDATE jobd.jobs j SET status = 1,"
	        " attempt = j.attempt + 1, started_at = $3, finished_at = NULL,"
	        " claim = $2, attempt_started = true, cancel_requested = false"
	        " WHERE j.id = ANY (ARRAY(SELECT id FROM jobd.jobs"
	        "   WHERE status = 0 AND due AND type = ANY ($4::text[])"
	        "   ORDER BY priority DESC, id LIMIT $1 FOR UPDATE SKIP LOCKED))"
	        " RETURNING j.id");
	prepare("done_arr", "UPDATE jobd.jobs SET status = 2, finished_at = $3,"
	        " result = 'null', claim = NULL WHERE id = ANY ($1::uuid[])"
	        " AND claim = $2 RETURNING id");
	prepare("done_one", "UPDATE jobd.jobs SET status = 2, finished_at = $3,"
	        " result = 'null', claim = NULL WHERE id = $1 AND claim = $2"
	        " RETURNING status");
	prepare("cnt", "UPDATE jobd.counts SET n = n + CASE status"
	        " WHEN 0 THEN -$1::int8 WHEN 2 THEN $1::int8 ELSE 0 END"
	        " WHERE status IN (0, 2)");

	t0 = now_s();
	while ((t = now_s()) - t0 < run_secs && nlat < 200000) {
		char ts[32], n[16];
		const char *cv[4];
		int done = nids;

		snprintf(ts, sizeof(ts), "%lld", (long long)wall_us());
		snprintf(prev, sizeof(prev), "%s", tok);
		snprintf(tok, sizeof(tok), "p:%ld", ++k);
		snprintf(n, sizeof(n), "%d", nids);
		if (mode == D_SYNC) {
			/* One answer per completion, as store_complete()
			 * gives it today. */
			exec_ok("BEGIN");
			for (int i = 0; i < nids; i++) {
				const char *dv[3] = {ids[i], prev, ts};
				PGresult *r = PQexecPrepared(conn, "done_one", 3,
				                             dv, NULL, NULL, 0);

				if (PQresultStatus(r) != PGRES_TUPLES_OK)
					die("done_one");
				PQclear(r);
			}
			if (PQenterPipelineMode(conn) != 1)
				die("pipeline");
		} else {
			if (PQenterPipelineMode(conn) != 1)
				die("pipeline");
			send_sql("BEGIN");
			if (mode == D_ARRAY && nids > 0) {
				char *p = arr;

				*p++ = '{';
				for (int i = 0; i < nids; i++)
					p += sprintf(p, "%s%s", i ? "," : "",
					             ids[i]);
				strcpy(p, "}");
				cv[0] = arr;
				cv[1] = prev;
				cv[2] = ts;
				send_prepared("done_arr", 3, cv);
			} else {
				for (int i = 0; i < nids; i++) {
					const char *dv[3] = {ids[i], prev, ts};

					send_prepared("done_one", 3, dv);
				}
			}
		}
		cv[0] = n;
		send_prepared("cnt", 1, cv);
		cv[0] = lim;
		cv[1] = tok;
		cv[2] = ts;
		cv[3] = "{noop,echo,mail}";
		send_prepared("claim", 4, cv);
		send_sql("COMMIT");
		if (PQpipelineSync(conn) != 1)
			die("sync");
		for (int i = 0; i < nids; i++)
			free(ids[i]);
		nids = 0;
		drain_results(&ids, &nids);
		if (PQexitPipelineMode(conn) != 1)
			die("exit pipeline");
		lat[nlat++] = now_s() - t;
		jobs += done;
		if (nids == 0 && done == 0)
			break; /* the queue is empty */
	}
	report(names[mode], batch, jobs, now_s() - t0, lat, nlat);
	for (int i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	free(arr);
	free(lat);
	exec_ok("DEALLOCATE ALL");
}

int
main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: probe URI SECONDS\n");
		return 2;
	}
	run_secs = atof(argv[2]);
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
		die("connect");
	exec_ok("SET synchronous_commit = on");
	for (int b = 64; b <= 256; b *= 4) {
		exec_ok("TRUNCATE jobd.jobs");
		for (int m = M_VALUES; m <= M_PIPELINE; m++)
			intake(m, b);
	}
	for (int b = 64; b <= 256; b *= 4)
		for (int m = D_ARRAY; m <= D_SYNC; m++)
			drain(m, b, (long)(run_secs * 60000) + 50000);
	PQfinish(conn);
	return 0;
}

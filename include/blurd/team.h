/* team.h - a fixed team of threads that runs one parallel loop at a time: the way one
 * forward pass is spread over several cores.
 *
 * OpenBLAS does not split the tall, narrow GEMMs of the convolutions across threads
 * usefully (measured: conv2 of the default net takes the same time on one thread as on
 * two), so blurd splits each layer's rows into cache-sized chunks itself and gives each
 * thread its own chunks, calling OpenBLAS single-threaded from each.
 *
 * A team is owned by one caller thread; blurd_team_run is not reentrant.
 */
#ifndef BLURD_TEAM_H
#define BLURD_TEAM_H

typedef struct blurd_team blurd_team;

/* Runs task(arg, index, thread) for index in [0, tasks); `thread` in [0, threads) names the
 * thread running it, so tasks can use per-thread scratch.  The caller is thread 0. */
typedef void blurd_team_task(void *arg, int index, int thread);

/* Starts threads - 1 helper threads (none for threads == 1). */
int blurd_team_create(blurd_team **out, int threads, char *err);
void blurd_team_free(blurd_team *team); /* joins the helpers; NULL is a no-op */
int blurd_team_threads(const blurd_team *team);

/* Runs all `tasks` and returns when every one has finished. Tasks are handed out in index
 * order, one at a time, to whichever thread is free. */
void blurd_team_run(blurd_team *team, int tasks, blurd_team_task *task, void *arg);

#endif

/* team.c - helper threads sleeping on a condition variable between parallel loops, tasks
 * handed out through one atomic counter.
 *
 * Expected workload: a few parallel loops per forward pass (one per layer), each of a few
 * to a few hundred tasks lasting tens of microseconds to milliseconds; waking the helpers
 * costs tens of microseconds, small beside that. */
#include "blurd/team.h"

#include "blurd/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct blurd_team {
    int threads;
    pthread_t *helpers;
    int started;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* a new loop (generation changed) or quit */
    pthread_cond_t idle; /* the last helper finished its part of the loop */
    uint64_t generation;
    int busy_helpers;
    bool quit;

    blurd_team_task *task;
    void *arg;
    int tasks;
    atomic_int next;
};

struct helper_start {
    blurd_team *team;
    int thread;
};

static void work(blurd_team *team, int thread)
{
    for (;;) {
        int index = atomic_fetch_add(&team->next, 1);
        if (index >= team->tasks)
            return;
        team->task(team->arg, index, thread);
    }
}

static void *helper_main(void *arg)
{
    struct helper_start *start = arg;
    blurd_team *team = start->team;
    int thread = start->thread;
    free(start);
    uint64_t seen = 0;
    pthread_mutex_lock(&team->lock);
    for (;;) {
        while (team->generation == seen && !team->quit)
            pthread_cond_wait(&team->wake, &team->lock);
        if (team->quit)
            break;
        seen = team->generation;
        pthread_mutex_unlock(&team->lock);
        work(team, thread);
        pthread_mutex_lock(&team->lock);
        if (--team->busy_helpers == 0)
            pthread_cond_signal(&team->idle);
    }
    pthread_mutex_unlock(&team->lock);
    return NULL;
}

int blurd_team_create(blurd_team **out, int threads, char *err)
{
    *out = NULL;
    if (threads < 1 || threads > 256)
        return blurd_error_set(err, BLURD_EINVAL, "%d threads is out of range", threads);
    blurd_team *team = calloc(1, sizeof *team);
    if (team == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    team->threads = threads;
    pthread_mutex_init(&team->lock, NULL);
    pthread_cond_init(&team->wake, NULL);
    pthread_cond_init(&team->idle, NULL);
    team->helpers = calloc((size_t)threads, sizeof *team->helpers);
    if (team->helpers == NULL) {
        blurd_team_free(team);
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    }
    for (int i = 1; i < threads; i++) {
        struct helper_start *start = malloc(sizeof *start);
        if (start == NULL) {
            blurd_team_free(team);
            return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
        }
        *start = (struct helper_start){team, i};
        if (pthread_create(&team->helpers[team->started], NULL, helper_main, start) != 0) {
            free(start);
            blurd_team_free(team);
            return blurd_error_set(err, BLURD_ENOMEM, "cannot start thread %d of %d", i, threads);
        }
        team->started++;
    }
    *out = team;
    return 0;
}

void blurd_team_free(blurd_team *team)
{
    if (team == NULL)
        return;
    pthread_mutex_lock(&team->lock);
    team->quit = true;
    pthread_cond_broadcast(&team->wake);
    pthread_mutex_unlock(&team->lock);
    for (int i = 0; i < team->started; i++)
        pthread_join(team->helpers[i], NULL);
    pthread_mutex_destroy(&team->lock);
    pthread_cond_destroy(&team->wake);
    pthread_cond_destroy(&team->idle);
    free(team->helpers);
    free(team);
}

int blurd_team_threads(const blurd_team *team)
{
    return team->threads;
}

void blurd_team_run(blurd_team *team, int tasks, blurd_team_task *task, void *arg)
{
    if (team->started == 0 || tasks <= 1) {
        for (int i = 0; i < tasks; i++)
            task(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&team->lock);
    team->task = task;
    team->arg = arg;
    team->tasks = tasks;
    atomic_store(&team->next, 0);
    team->busy_helpers = team->started;
    team->generation++;
    pthread_cond_broadcast(&team->wake);
    pthread_mutex_unlock(&team->lock);

    work(team, 0);

    pthread_mutex_lock(&team->lock);
    while (team->busy_helpers > 0)
        pthread_cond_wait(&team->idle, &team->lock);
    pthread_mutex_unlock(&team->lock);
}

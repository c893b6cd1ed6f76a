#include "sidecar/stats.h"

static void add(atomic_llong *into, const atomic_llong *from) {
  atomic_fetch_add_explicit(into, atomic_load_explicit(from, memory_order_relaxed),
                            memory_order_relaxed);
}

void ms_stats_add(ms_stats *into, const ms_stats *from) {
#define MS_STATS_SUM(name, help) add(&into->name, &from->name);
  MS_STATS_COUNTERS(MS_STATS_SUM)
#undef MS_STATS_SUM
  for (int i = 0; i < MS_TLS_FAILURE_COUNT; i++)
    add(&into->handshake_failure[i], &from->handshake_failure[i]);
}

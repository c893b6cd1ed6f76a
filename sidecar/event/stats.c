#include "sidecar/event/stats.h"

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
  for (int i = 0; i < MS_LATENCY_BUCKETS; i++)
    add(&into->latency[i], &from->latency[i]);
  add(&into->latency_sum_us, &from->latency_sum_us);
}

/* Envoy's default histogram bounds, from half a millisecond to 30 s. */
const double ms_latency_bounds_ms[MS_LATENCY_BUCKETS - 1] = {
    0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};

void ms_stats_record_latency(ms_stats *stats, uint64_t us) {
  int bucket = 0;
  while (bucket < MS_LATENCY_BUCKETS - 1 && (double)us > ms_latency_bounds_ms[bucket] * 1000)
    bucket++;
  MS_STAT_ADD(stats, latency[bucket], 1);
  MS_STAT_ADD(stats, latency_sum_us, (long long)us);
}

int ms_stats_latency_bucket(const ms_stats *stats, double q) {
  long long total = 0;
  for (int i = 0; i < MS_LATENCY_BUCKETS; i++)
    total += atomic_load_explicit(&stats->latency[i], memory_order_relaxed);
  if (total == 0) return -1;
  double rank = q * (double)total;
  long long seen = 0;
  for (int i = 0; i < MS_LATENCY_BUCKETS - 1; i++) {
    seen += atomic_load_explicit(&stats->latency[i], memory_order_relaxed);
    if (seen > 0 && (double)seen >= rank) return i;
  }
  return MS_LATENCY_BUCKETS - 1;
}

/* server_rate.c: token buckets per key (server_internal.h), for the CA
 * API's limit on signings per SPIFFE ID. A hash table of buckets; a bucket
 * that has refilled is dropped, at the latest by the sweep that runs once
 * per refill period (or when the table is full), so memory follows the keys
 * seen recently. Pure: the caller passes the time. */
#include <stdlib.h>
#include <string.h>

#include "xds-server/server_internal.h"

#define BUCKET_COUNT 16384

struct xds_rate_entry {
  xds_rate_entry *next;
  double tokens;
  int64_t updated_ms;
  char key[]; /* NUL-terminated */
};

int xds_rate_init(xds_rate_table *table, double per_minute, double burst, size_t max_entries) {
  memset(table, 0, sizeof(*table));
  table->per_minute = per_minute > 0 ? per_minute : 0;
  table->burst = burst >= 1 ? burst : 1;
  table->max_entries = max_entries;
  if (table->per_minute == 0) return 0;
  table->bucket_count = BUCKET_COUNT;
  table->buckets = calloc(BUCKET_COUNT, sizeof(xds_rate_entry *));
  return table->buckets != NULL ? 0 : -1;
}

void xds_rate_cleanup(xds_rate_table *table) {
  for (size_t i = 0; i < table->bucket_count; i++) {
    xds_rate_entry *entry = table->buckets[i];
    while (entry != NULL) {
      xds_rate_entry *next = entry->next;
      free(entry);
      entry = next;
    }
  }
  free(table->buckets);
  memset(table, 0, sizeof(*table));
}

/* refill adds the tokens earned since the entry's last update, up to burst. */
static void refill(const xds_rate_table *table, xds_rate_entry *entry, int64_t now_ms) {
  if (now_ms > entry->updated_ms) {
    entry->tokens += (double)(now_ms - entry->updated_ms) * table->per_minute / 60000.0;
    if (entry->tokens > table->burst) entry->tokens = table->burst;
    entry->updated_ms = now_ms;
  }
}

/* sweep drops every bucket that has refilled by `now_ms`. */
static void sweep(xds_rate_table *table, int64_t now_ms) {
  table->last_sweep_ms = now_ms;
  for (size_t i = 0; i < table->bucket_count; i++) {
    for (xds_rate_entry **link = &table->buckets[i]; *link != NULL;) {
      xds_rate_entry *entry = *link;
      refill(table, entry, now_ms);
      if (entry->tokens >= table->burst) {
        *link = entry->next;
        free(entry);
        table->entry_count--;
      } else {
        link = &entry->next;
      }
    }
  }
}

xds_rate_result xds_rate_take(xds_rate_table *table, const char *key, int64_t now_ms) {
  if (table->per_minute == 0) return XDS_RATE_OK;
  /* Once per refill period: by then every bucket untouched since the last
   * sweep is full. */
  int64_t refill_ms = (int64_t)(table->burst * 60000.0 / table->per_minute);
  if (now_ms - table->last_sweep_ms >= refill_ms) sweep(table, now_ms);
  size_t index = xds_hash_string(key, table->bucket_count);
  xds_rate_entry *entry = table->buckets[index];
  while (entry != NULL && strcmp(entry->key, key) != 0)
    entry = entry->next;
  if (entry == NULL) {
    /* Full: sweep, at most once a second (a sweep walks the whole table). */
    if (table->entry_count >= table->max_entries && now_ms - table->last_sweep_ms >= 1000)
      sweep(table, now_ms);
    size_t len = strlen(key);
    if (table->entry_count >= table->max_entries ||
        (entry = malloc(sizeof(*entry) + len + 1)) == NULL)
      return XDS_RATE_FULL;
    memcpy(entry->key, key, len + 1);
    entry->tokens = table->burst;
    entry->updated_ms = now_ms;
    entry->next = table->buckets[index];
    table->buckets[index] = entry;
    table->entry_count++;
  }
  refill(table, entry, now_ms);
  if (entry->tokens < 1) return XDS_RATE_LIMITED;
  entry->tokens -= 1;
  return XDS_RATE_OK;
}

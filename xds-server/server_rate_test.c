/* server_rate_test.c: the CA API's token buckets (server_rate.c) with a
 * clock of our own: a burst, then refusals; refill over time; buckets of
 * other keys apart; a refilled bucket is forgotten; a full table refuses new
 * keys until a sweep frees room; 0 per minute means no limit. */
#include <stdio.h>

#include "tests/lib/test_check.h"
#include "xds-server/server_internal.h"

int main(void) {
  xds_rate_table table;
  CHECK(xds_rate_init(&table, 6, 3, 2) == 0); /* 6 a minute: one every 10 s; burst 3; 2 keys */
  int64_t now = 1000000;
  for (int i = 0; i < 3; i++)
    CHECK_INT(xds_rate_take(&table, "alice", now), XDS_RATE_OK);
  CHECK_INT(xds_rate_take(&table, "alice", now), XDS_RATE_LIMITED);
  CHECK_INT(xds_rate_take(&table, "alice", now + 9000), XDS_RATE_LIMITED);
  CHECK_INT(xds_rate_take(&table, "bob", now + 9000), XDS_RATE_OK);
  /* A full table: a third key is refused until buckets refill. */
  CHECK_INT(xds_rate_take(&table, "carol", now + 9000), XDS_RATE_FULL);
  CHECK_INT(table.entry_count, 2);
  CHECK_INT(xds_rate_take(&table, "alice", now + 10000), XDS_RATE_OK);
  CHECK_INT(xds_rate_take(&table, "alice", now + 10000), XDS_RATE_LIMITED);
  /* 30 s refill everything (burst 3 at 10 s each): both are forgotten. */
  CHECK_INT(xds_rate_take(&table, "carol", now + 41000), XDS_RATE_OK);
  CHECK_INT(table.entry_count, 1);
  xds_rate_cleanup(&table);

  CHECK(xds_rate_init(&table, 0, 0, 0) == 0);
  for (int i = 0; i < 1000; i++)
    CHECK_INT(xds_rate_take(&table, "alice", now), XDS_RATE_OK);
  CHECK_INT(table.entry_count, 0);
  xds_rate_cleanup(&table);
  printf("server_rate_test: passed\n");
  return 0;
}

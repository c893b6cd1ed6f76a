/* cert_expiry_test: the state of a certificate at each instant of its life,
 * the days left as /certs and Envoy count them, and what the admin endpoint
 * shows of it. No server needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/control/cert_expiry.h"
#include "tests/lib/test_check.h"

/* A certificate valid from 1000 to 2000 (a lifetime of 1000 s). */
static ms_cert_info certificate(int64_t not_before, int64_t not_after) {
  ms_cert_info info;
  memset(&info, 0, sizeof(info));
  info.not_before = not_before;
  info.not_after = not_after;
  return info;
}

static void test_states(void) {
  ms_cert_info info = certificate(1000, 2000);
  CHECK(ms_cert_state_at(&info, 999, 80) == MS_CERT_NOT_YET_VALID);
  CHECK(ms_cert_state_at(&info, 1000, 80) == MS_CERT_VALID);
  CHECK(ms_cert_state_at(&info, 1799, 80) == MS_CERT_VALID);
  CHECK(ms_cert_state_at(&info, 1800, 80) == MS_CERT_EXPIRING); /* 80% of 1000 s passed */
  /* Valid through the second of its not_after, as X.509 and the TLS loader have it. */
  CHECK(ms_cert_state_at(&info, 2000, 80) == MS_CERT_EXPIRING);
  CHECK(ms_cert_state_at(&info, 2001, 80) == MS_CERT_EXPIRED);
  /* 100%: expiring only in its last second; 1%: almost at once. */
  CHECK(ms_cert_state_at(&info, 1999, 100) == MS_CERT_VALID);
  CHECK(ms_cert_state_at(&info, 2000, 100) == MS_CERT_EXPIRING);
  CHECK(ms_cert_state_at(&info, 1009, 1) == MS_CERT_VALID);
  CHECK(ms_cert_state_at(&info, 1010, 1) == MS_CERT_EXPIRING);
  /* A lifetime that does not divide evenly: 80% of 7 s is 5.6 s, so 6 s. */
  ms_cert_info odd = certificate(0, 7);
  CHECK(ms_cert_state_at(&odd, 5, 80) == MS_CERT_VALID);
  CHECK(ms_cert_state_at(&odd, 6, 80) == MS_CERT_EXPIRING);
  /* Ten years: no overflow in the share. */
  ms_cert_info long_lived = certificate(0, 315360000);
  CHECK(ms_cert_state_at(&long_lived, 252288000 - 1, 80) == MS_CERT_VALID);
  CHECK(ms_cert_state_at(&long_lived, 252288000, 80) == MS_CERT_EXPIRING);

  CHECK_STR(ms_cert_state_name(MS_CERT_VALID), "valid");
  CHECK_STR(ms_cert_state_name(MS_CERT_EXPIRING), "expiring");
  CHECK_STR(ms_cert_state_name(MS_CERT_EXPIRED), "expired");
  CHECK_STR(ms_cert_state_name(MS_CERT_NOT_YET_VALID), "not_yet_valid");
}

static void test_days(void) {
  ms_cert_info info = certificate(0, 10 * 86400);
  CHECK_INT(ms_cert_days_until_expiration(&info, 0), 10);
  CHECK_INT(ms_cert_days_until_expiration(&info, 9 * 86400 + 1), 0); /* its last day */
  CHECK_INT(ms_cert_days_until_expiration(&info, 10 * 86400), 0);
  CHECK_INT(ms_cert_days_until_expiration(&info, 10 * 86400 + 1), -1); /* expired a second ago */
  CHECK_INT(ms_cert_days_until_expiration(&info, 11 * 86400), -1);
  CHECK_INT(ms_cert_days_until_expiration(&info, 11 * 86400 + 1), -2);
}

static void test_json(void) {
  ms_cert_info info = certificate(1000, 2000);
  cJSON *json = cJSON_CreateObject();
  CHECK(ms_cert_expiry_add_json(json, "state", &info, 2003, 80) == 0);
  char *text = cJSON_PrintUnformatted(json);
  CHECK_STR(text,
            "{\"days_until_expiration\":-1,\"seconds_until_expiration\":-3,\"state\":"
            "\"expired\"}");
  free(text);
  cJSON_Delete(json);

  json = cJSON_CreateObject();
  CHECK(ms_cert_expiry_add_json(json, "certificate_state", &info, 1900, 80) == 0);
  text = cJSON_PrintUnformatted(json);
  CHECK(strstr(text, "\"seconds_until_expiration\":100,\"certificate_state\":\"expiring\"") !=
        NULL);
  free(text);
  cJSON_Delete(json);

  CHECK_STR(ms_cert_source_name(MS_CERT_SOURCE_FILE), "file");
  CHECK_STR(ms_cert_source_name(MS_CERT_SOURCE_SDS), "sds");
  CHECK_STR(ms_cert_source_name(MS_CERT_SOURCE_IDENTITY), "identity");
  CHECK_STR(ms_cert_source_name(MS_CERT_SOURCE_XDS_CLIENT), "xds_client");
}

int main(void) {
  test_states();
  test_days();
  test_json();
  printf("cert_expiry_test: all passed\n");
  return 0;
}

/* pb_depth_fuzz.c: a fuzz target for the nesting guard (pb_depth.h) and
 * protobuf-c behind it, on a DiscoveryRequest (node.metadata nests without
 * end). With -fsanitize=fuzzer (MS_PB_FUZZER defined) libFuzzer drives
 * LLVMFuzzerTestOneInput; built plainly it is a test that feeds it random
 * mutations of a seed for a fixed number of rounds (deterministic seed), so
 * the target is exercised in every `bazel test` run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "xds/proto/pb_depth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  ProtobufCMessage *message = ms_pb_unpack_guarded(
      &envoy__service__discovery__v3__discovery_request__descriptor, data, size, err, sizeof(err));
  protobuf_c_message_free_unpacked(message, NULL);
  return 0;
}

#ifndef MS_PB_FUZZER
int main(void) {
  /* node { id "n" metadata { fields { key "k" value { list_value { values {
   * struct_value { } } } } } } } type_url "t" */
  static const uint8_t seed[] = {0x12, 0x16, 0x0a, 0x01, 'n',  0x1a, 0x11, 0x0a, 0x0f,
                                 0x0a, 0x01, 'k',  0x12, 0x0a, 0x32, 0x08, 0x0a, 0x06,
                                 0x2a, 0x04, 0x0a, 0x02, 0x0a, 0x00, 0x22, 0x01, 't'};
  uint8_t buf[256];
  srand(1);
  for (int round = 0; round < 200000; round++) {
    size_t len = sizeof(seed);
    memcpy(buf, seed, len);
    int edits = 1 + rand() % 4;
    for (int e = 0; e < edits; e++) {
      size_t at = (size_t)rand() % len;
      switch (rand() % 3) {
        case 0:
          buf[at] = (uint8_t)rand();
          break;
        case 1:
          len = at + 1;
          break;
        default:
          if (len < sizeof(buf)) {
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = (uint8_t)rand();
            len++;
          }
      }
    }
    LLVMFuzzerTestOneInput(buf, len);
  }
  printf("pb_depth_fuzz: 200000 mutated inputs\n");
  return 0;
}
#endif

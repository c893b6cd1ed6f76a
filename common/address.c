/* address.c: "host:port" and "[v6]:port" (net.h's ms_address). */
#include "common/net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool valid_host_name(const char *host) {
  size_t length = strlen(host);
  if (length == 0 || length > 253) return false;
  for (const char *c = host; *c != '\0'; c++) {
    if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.' && *c != '_') return false;
  }
  return true;
}

static bool parse_port(const char *text, uint16_t *out_port) {
  unsigned long port = 0;
  size_t digits = 0;
  for (const char *c = text; *c != '\0'; c++, digits++) {
    if (!isdigit((unsigned char)*c) || digits >= 5) return false;
    port = port * 10 + (unsigned long)(*c - '0');
  }
  if (digits == 0 || port < 1 || port > 65535) return false;
  *out_port = (uint16_t)port;
  return true;
}

int ms_address_parse(const char *text, ms_address *out, char *err, size_t err_len) {
  ms_address address;
  memset(&address, 0, sizeof(address));
  const char *host_start;
  const char *port_text;
  bool bracketed = text[0] == '[';
  if (bracketed) {
    const char *close = strchr(text, ']');
    if (close == NULL) {
      snprintf(err, err_len, "\"%s\": an IPv6 address needs a closing \"]\", like \"[::1]:8443\"",
               text);
      return -1;
    }
    if (close[1] != ':') {
      snprintf(err, err_len, "\"%s\": missing port; write \"[host]:port\", like \"[::1]:8443\"",
               text);
      return -1;
    }
    host_start = text + 1;
    port_text = close + 2;
  } else {
    const char *colon = strrchr(text, ':');
    if (colon == NULL) {
      snprintf(err, err_len, "\"%s\": missing port; write \"host:port\", like \"orders.shop:8443\"",
               text);
      return -1;
    }
    if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
      snprintf(err, err_len, "\"%s\": an IPv6 address needs brackets, like \"[::1]:8443\"", text);
      return -1;
    }
    host_start = text;
    port_text = colon + 1;
  }
  size_t host_len = (size_t)(port_text - 1 - host_start) - (bracketed ? 1 : 0);
  char host[256];
  if (host_len == 0) {
    snprintf(err, err_len, "\"%s\": missing host before the port", text);
    return -1;
  }
  if (host_len >= sizeof(host)) {
    snprintf(err, err_len, "\"%.40s...\": the host name is longer than 253 characters", text);
    return -1;
  }
  memcpy(host, host_start, host_len);
  host[host_len] = '\0';
  if (!parse_port(port_text, &address.port)) {
    snprintf(err, err_len, "\"%s\": the port must be a number from 1 to 65535", text);
    return -1;
  }

  struct sockaddr_in *v4 = (struct sockaddr_in *)&address.sockaddr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address.sockaddr;
  if (bracketed) {
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1) {
      snprintf(err, err_len, "\"%s\": \"%s\" is not an IPv6 address", text, host);
      return -1;
    }
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(address.port);
    address.sockaddr_len = sizeof(*v6);
    address.host_is_ip = true;
  } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(address.port);
    address.sockaddr_len = sizeof(*v4);
    address.host_is_ip = true;
  } else if (!valid_host_name(host)) {
    snprintf(err, err_len, "\"%s\": \"%s\" is neither an IP address nor a valid host name", text,
             host);
    return -1;
  }
  address.text = strdup(text);
  address.host = strdup(host);
  if (address.text == NULL || address.host == NULL) {
    ms_address_cleanup(&address);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  *out = address;
  return 0;
}

void ms_address_cleanup(ms_address *address) {
  if (address == NULL) return;
  free(address->text);
  free(address->host);
  memset(address, 0, sizeof(*address));
}

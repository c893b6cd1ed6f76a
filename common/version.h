/* version.h: the project's version, one for every program: sidecar,
 * xds-server and certs print it with --version, and /server_info shows it. */
#ifndef MS_VERSION_H
#define MS_VERSION_H

#define MS_VERSION "0.1.0"

#endif

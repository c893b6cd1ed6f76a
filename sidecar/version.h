/* version.h: the sidecar's version, shown by --version and /server_info. */
#ifndef MS_VERSION_H
#define MS_VERSION_H

#define MS_VERSION "0.1.0"

#endif

/*
 * version.h - jobd's version, for --version, the ready line and
 * jobd_build_info.
 */
#ifndef JOBD_VERSION_H
#define JOBD_VERSION_H

#define JOBD_VERSION "0.1.0"

#endif

#ifndef GC_VERSION_H
#define GC_VERSION_H
#define GCMON_VERSION "0.1.0"
#define GCMON_USER_AGENT "gcmon/" GCMON_VERSION
#endif

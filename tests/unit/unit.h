#ifndef GC_UNIT_H
#define GC_UNIT_H
#include <check.h>

Suite *conf_suite(void);
Suite *budget_suite(void);
Suite *metrics_suite(void);
Suite *upstream_suite(void);
Suite *state_suite(void);

#endif

/* Shared CUnit harness of the serial suites.
 *
 * A suite file defines its tests and ends with
 *   static CU_TestInfo tests[] = {{"name", fn}, ..., CU_TEST_INFO_NULL};
 *   IFT_TEST_MAIN("suite", tests)
 * The program exits non-zero when any assertion failed. */
#ifndef IFTRAIN_TESTS_HARNESS_H
#define IFTRAIN_TESTS_HARNESS_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* |a - b| <= atol + rtol*|b|, with the values printed on failure. */
#define IFT_ASSERT_CLOSE(a, b, rtol, atol)                                     \
  do {                                                                         \
    double ift_a_ = (double)(a), ift_b_ = (double)(b);                         \
    int ift_ok_ = fabs(ift_a_ - ift_b_) <= (atol) + (rtol)*fabs(ift_b_);        \
    if (!ift_ok_)                                                              \
      fprintf(stderr, "\n  %s:%d: %s = %.9g, expected %s = %.9g\n", __FILE__,  \
              __LINE__, #a, ift_a_, #b, ift_b_);                               \
    CU_ASSERT(ift_ok_);                                                        \
  } while (0)

static inline int ift_test_run(const char *suite, CU_TestInfo *tests) {
  if (CU_initialize_registry() != CUE_SUCCESS) return 2;
  CU_SuiteInfo suites[] = {{suite, NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
  if (CU_register_suites(suites) != CUE_SUCCESS) return 2;
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
  CU_cleanup_registry();
  return failed ? 1 : 0;
}

#define IFT_TEST_MAIN(suite, tests)                                            \
  int main(void) { return ift_test_run((suite), (tests)); }

#endif

/* CUnit harness of the MPI suites: every rank runs every test; failures are
 * combined with MPI_Allreduce so the job exits non-zero when any rank failed,
 * and only rank 0 prints the CUnit report. */
#ifndef IFTRAIN_TESTS_MPI_HARNESS_H
#define IFTRAIN_TESTS_MPI_HARNESS_H

#include <CUnit/Basic.h>
#include <mpi.h>
#include <stdio.h>

#include "../harness.h"
#include "iftrain/dist.h"

static inline int ift_mpi_test_run(int argc, char **argv, const char *suite, CU_TestInfo *tests) {
  if (dist_init(&argc, &argv) != IFT_OK) return 2;
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (CU_initialize_registry() != CUE_SUCCESS) return 2;
  CU_SuiteInfo suites[] = {{suite, NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
  if (CU_register_suites(suites) != CUE_SUCCESS) return 2;
  /* Only rank 0 prints the report (CU_basic even prints its summary when
   * silent); the other ranks run the same tests through the plain API. */
  if (rank == 0) {
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
  } else {
    CU_run_all_tests();
  }
  int failed = (int)(CU_get_number_of_failures() + CU_get_number_of_tests_failed());
  if (failed) fprintf(stderr, "[rank %d] %d failure(s) in suite %s\n", rank, failed, suite);
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  CU_cleanup_registry();
  dist_finalize();
  return any ? 1 : 0;
}

#define IFT_MPI_TEST_MAIN(suite, tests)                                        \
  int main(int argc, char **argv) { return ift_mpi_test_run(argc, argv, (suite), (tests)); }

#endif

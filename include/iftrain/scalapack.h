/* Prototypes of the BLACS C interface, PBLAS and ScaLAPACK tools that
 * iftrain calls.  No C header ships with Debian's ScaLAPACK, so the project
 * declares exactly what it uses (Fortran calling convention: every argument
 * by pointer, trailing underscore). */
#ifndef IFTRAIN_SCALAPACK_H
#define IFTRAIN_SCALAPACK_H

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Array descriptor fields (ScaLAPACK users' guide, "Array descriptors"). */
enum { DESC_DTYPE, DESC_CTXT, DESC_M, DESC_N, DESC_MB, DESC_NB, DESC_RSRC,
       DESC_CSRC, DESC_LLD, DESC_LEN };

void Cblacs_pinfo(int *mypnum, int *nprocs);
void Cblacs_get(int icontxt, int what, int *val);
void Cblacs_gridinit(int *icontxt, const char *order, int nprow, int npcol);
void Cblacs_gridmap(int *icontxt, int *usermap, int ldumap, int nprow, int npcol);
void Cblacs_gridinfo(int icontxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int icontxt);
void Cblacs_exit(int notdone);
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);

int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc,
            const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ictxt, const int *lld,
               int *info);
void psgemm_(const char *transa, const char *transb, const int *m, const int *n,
             const int *k, const float *alpha, const float *a, const int *ia,
             const int *ja, const int *desca, const float *b, const int *ib,
             const int *jb, const int *descb, const float *beta, float *c,
             const int *ic, const int *jc, const int *descc);
void psgemr2d_(const int *m, const int *n, const float *a, const int *ia, const int *ja,
               const int *desca, float *b, const int *ib, const int *jb,
               const int *descb, const int *ictxt);

#ifdef __cplusplus
}
#endif
#endif

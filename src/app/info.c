#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "app.h"
#include "iftrain/dist.h"
#include "iftrain/kern.h"

static void cpu_model(char *buf, size_t n) {
  snprintf(buf, n, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10)) {
      char *p = strchr(line, ':');
      if (p) {
        p += 2;
        p[strcspn(p, "\n")] = 0;
        snprintf(buf, n, "%s", p);
      }
      break;
    }
  fclose(f);
}

int app_info(int argc, char **argv) {
  const app_optdef none[] = {{0}};
  const app_opts spec = {.cmd = "info", .opts = none};
  if (app_getopt(&spec, &argc, argv)) return APP_EXIT_USAGE;
  int rank = core_rank();
  int active = kern_arch_active();
  char layout[1 << 16] = "";
  int size = 1;
  if (dist_initialized()) {
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (dist_describe(layout, sizeof layout, MPI_COMM_WORLD) != IFT_OK) return APP_EXIT_FAIL;
  }
  if (rank != 0) return APP_EXIT_OK;
  char mpiver[MPI_MAX_LIBRARY_VERSION_STRING] = "not initialised (--no-mpi)";
  int len = 0, provided = -1;
  if (dist_initialized()) {
    MPI_Get_library_version(mpiver, &len);
    mpiver[strcspn(mpiver, "\n,")] = 0;
    MPI_Query_thread(&provided);
  }
  unsigned h5maj, h5min, h5rel;
  H5get_libversion(&h5maj, &h5min, &h5rel);
  char cpu[256];
  cpu_model(cpu, sizeof cpu);
  printf("iftrain %s\n", PACKAGE_VERSION);
  printf("  configured with: %s\n", IFT_CONFIGURE_ARGS[0] ? IFT_CONFIGURE_ARGS : "(defaults)");
  printf("  CPU:        %s\n", cpu);
  printf("  MPI:        %s (thread level %s)\n", mpiver,
         provided == MPI_THREAD_FUNNELED ? "funneled"
         : provided == MPI_THREAD_MULTIPLE ? "multiple"
         : provided == MPI_THREAD_SERIALIZED ? "serialized"
         : provided == MPI_THREAD_SINGLE ? "single" : "n/a");
  printf("  BLIS:       %s, kernels %s (chosen by %s; BLIS alone would pick %s), %d thread%s\n",
         kern_blis_version(), kern_arch_name(active), kern_sel_how_str(kern_arch_how()),
         kern_arch_name(kern_arch_blis_default()), kern_threads(), kern_threads() == 1 ? "" : "s");
  if (active != kern_arch_selected())
    printf("  WARNING:    BLIS runs %s although %s was selected\n", kern_arch_name(active),
           kern_arch_name(kern_arch_selected()));
  printf("  ScaLAPACK:  PBLAS/BLACS linked as %s\n", IFT_SCALAPACK_LIBS);
#ifdef H5_HAVE_PARALLEL
  const char *par = "yes";
#else
  const char *par = "NO";
#endif
  printf("  HDF5:       %u.%u.%u, parallel: %s\n", h5maj, h5min, h5rel, par);
  printf("  layout:     %d rank%s\n%s", size, size == 1 ? "" : "s", layout);
  return APP_EXIT_OK;
}

/* The C baseline of `pnpm bench:comm`: the same collectives, sizes and timing
 * rule as bench/comm_rank.ts, straight from C over the same MPI library.
 * usage: comm_c BYTES ITERS [malloc]; rank 0 prints one JSON line of median seconds. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double timed(int kind, float* send, float* recv, int n, int p, int iters, double* all) {
  for (int it = -2; it < iters; ++it) { /* two warm-up iterations */
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    if (kind == 0) MPI_Allreduce(send, recv, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    else MPI_Alltoall(send, n / p, MPI_FLOAT, recv, n / p, MPI_FLOAT, MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0, worst = 0;
    MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (it >= 0) all[it] = worst;
  }
  qsort(all, iters, sizeof(double), cmp);
  return all[iters / 2];
}

/* Buffers as a performance-minded C program allocates them, and as the
 * binding's commBuffer() does: 2 MiB-aligned and advised for transparent huge
 * pages (on 4 KiB pages the kernel's single-copy path between ranks is
 * several times slower, which would flatter the binding). With a third
 * argument "malloc": plain malloc'd buffers, the same memory a plain
 * Float32Array gets — the like-for-like baseline for the binding on plain arrays. */
static float* buffer(int n, int plain) {
  void* p = NULL;
  size_t bytes = (size_t)n * 4;
  if (plain) { /* as V8 allocates a large ArrayBuffer: glibc, 4 KiB-aligned, no advice */
    p = malloc(bytes);
    if (p == NULL) abort();
    memset(p, 0, bytes);
    return (float*)p;
  }
  if (posix_memalign(&p, 2u << 20, bytes) != 0) abort();
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  memset(p, 0, bytes);
  return (float*)p;
}

int main(int argc, char** argv) {
  int provided, rank, p;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  long bytes = argc > 1 ? atol(argv[1]) : 16L << 20;
  int iters = argc > 2 ? atoi(argv[2]) : 10;
  int n = (int)(bytes / 4 / p) * p;
  int plain = argc > 3 && strcmp(argv[3], "malloc") == 0;
  float* send = buffer(n, plain);
  float* recv = buffer(n, plain);
  double* all = malloc(sizeof(double) * iters);
  for (int i = 0; i < n; ++i) send[i] = (float)(rank + i % 7);
  double ar = timed(0, send, recv, n, p, iters, all);
  double a2a = timed(1, send, recv, n, p, iters, all);
  if (rank == 0) printf("{\"bytes\":%ld,\"allreduce_s\":%.9f,\"alltoall_s\":%.9f}\n", (long)n * 4, ar, a2a);
  free(send);
  free(recv);
  free(all);
  MPI_Finalize();
  return 0;
}
